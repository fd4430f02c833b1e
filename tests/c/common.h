/* Helpers shared by the C test programs. */
#ifndef MEDVAULT_TESTS_COMMON_H
#define MEDVAULT_TESTS_COMMON_H

#include <stdio.h>
#include <stdlib.h>

/* The text file `dir/name` (at most 64 KiB), NUL-terminated; exits on failure. */
static char *read_text(const char *dir, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "cannot open %s\n", path);
    exit(2);
  }
  char *buf = calloc(1, 1 << 16);
  size_t n = buf == NULL ? 0 : fread(buf, 1, (1 << 16) - 1, f);
  fclose(f);
  if (buf == NULL || n == 0) {
    fprintf(stderr, "cannot read %s\n", path);
    exit(2);
  }
  return buf;
}

#endif
