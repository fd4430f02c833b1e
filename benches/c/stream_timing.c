/* Times medvault's C streaming calls against its one-shot calls, for the criterion
 * bench `benches/c_stream.rs`, which compiles this against the libmedvault.a it built.
 *
 *   stream_timing MODE SIZE ITERATIONS PIECE
 *
 * MODE is one of seal, stream-seal, open, stream-open; SIZE the record's plaintext
 * length; PIECE the bytes handed to each `_update` call. Prints the nanoseconds the
 * ITERATIONS records took (set-up and the sealed input for the open modes excluded),
 * and exits non-zero on any failure, after checking every opened record. */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "medvault.h"

#define CHECK(call)                                                           \
  do {                                                                        \
    medvault_status status_ = (call);                                         \
    if (status_ != MEDVAULT_STATUS_OK) {                                      \
      fprintf(stderr, "%s failed: %d\n", #call, (int)status_);                \
      exit(2);                                                                \
    }                                                                         \
  } while (0)

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Appends `part` to `buf` (growing it) and frees `part`. */
static void append(uint8_t **buf, size_t *len, size_t *cap, medvault_bytes *part) {
  if (*len + part->len > *cap) {
    *cap = (*len + part->len) * 2;
    *buf = realloc(*buf, *cap);
    if (*buf == NULL) exit(3);
  }
  if (part->len > 0) memcpy(*buf + *len, part->data, part->len);
  *len += part->len;
  medvault_bytes_free(part);
}

static void stream_seal(const medvault_patient_key *key, const uint8_t *id, const uint8_t *data,
                        size_t size, size_t piece, uint8_t **out, size_t *out_len, size_t *cap) {
  medvault_sealer *sealer = NULL;
  CHECK(medvault_sealer_init(key, id, &sealer));
  *out_len = 0;
  for (size_t at = 0; at < size; at += piece) {
    size_t n = size - at < piece ? size - at : piece;
    medvault_bytes part = {0};
    CHECK(medvault_sealer_update(sealer, data + at, n, &part));
    append(out, out_len, cap, &part);
  }
  medvault_bytes part = {0};
  CHECK(medvault_sealer_finish(sealer, &part));
  append(out, out_len, cap, &part);
  medvault_sealer_free(sealer);
}

/* Opens `sealed` piece by piece; the plaintext goes where a C program would write it
 * (here: compared with `data` after the clock stopped, through `checksum`). */
static uint64_t stream_open(const medvault_patient_key *key, const uint8_t *sealed,
                            size_t sealed_len, size_t piece, size_t *opened) {
  medvault_opener *opener = NULL;
  CHECK(medvault_opener_init(key, &opener));
  uint64_t checksum = 0;
  *opened = 0;
  for (size_t at = 0; at < sealed_len; at += piece) {
    size_t n = sealed_len - at < piece ? sealed_len - at : piece;
    medvault_bytes part = {0};
    CHECK(medvault_opener_update(opener, sealed + at, n, &part));
    if (part.len > 0) checksum += part.data[part.len - 1];
    *opened += part.len;
    medvault_bytes_free(&part);
  }
  medvault_bytes part = {0};
  CHECK(medvault_opener_finish(opener, &part));
  if (part.len > 0) checksum += part.data[part.len - 1];
  *opened += part.len;
  medvault_bytes_free(&part);
  medvault_opener_free(opener);
  return checksum;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s MODE SIZE ITERATIONS PIECE\n", argv[0]);
    return 1;
  }
  const char *mode = argv[1];
  size_t size = strtoull(argv[2], NULL, 10);
  uint64_t iterations = strtoull(argv[3], NULL, 10);
  size_t piece = strtoull(argv[4], NULL, 10);
  if (piece == 0) return 1;

  medvault_master_key *master = NULL;
  CHECK(medvault_master_key_generate(&master));
  medvault_patient_key *key = NULL;
  CHECK(medvault_patient_key_derive(master, "bench-hospital", (const uint8_t *)"+15550100", 9, 0,
                                    &key));
  uint8_t id[16] = {2};
  uint8_t *data = malloc(size + 1);
  if (data == NULL) return 3;
  for (size_t i = 0; i < size; i++) data[i] = (uint8_t)(i * 31 % 251);

  size_t cap = size + size / 100 + 4096, sealed_len = 0;
  uint8_t *sealed = malloc(cap);
  if (sealed == NULL) return 3;
  stream_seal(key, id, data, size, piece, &sealed, &sealed_len, &cap);

  uint64_t start = now_ns(), checksum = 0;
  for (uint64_t i = 0; i < iterations; i++) {
    if (strcmp(mode, "seal") == 0) {
      /* Into the same buffer the streaming mode appends to, as both would write to
       * the same file. */
      medvault_bytes out = {0};
      CHECK(medvault_seal(key, id, data, size, &out));
      size_t len = 0;
      append(&sealed, &len, &cap, &out);
      checksum += len;
    } else if (strcmp(mode, "stream-seal") == 0) {
      size_t len = 0;
      stream_seal(key, id, data, size, piece, &sealed, &len, &cap);
      checksum += len;
    } else if (strcmp(mode, "open") == 0) {
      medvault_bytes out = {0};
      CHECK(medvault_open(key, sealed, sealed_len, &out));
      if (out.len != size || (size > 0 && out.data[size - 1] != data[size - 1])) return 4;
      medvault_bytes_free(&out);
    } else if (strcmp(mode, "stream-open") == 0) {
      size_t opened = 0;
      checksum += stream_open(key, sealed, sealed_len, piece, &opened);
      if (opened != size) return 4;
    } else {
      fprintf(stderr, "unknown mode %s\n", mode);
      return 1;
    }
  }
  uint64_t elapsed = now_ns() - start;

  /* The last record sealed or opened must open to the data. */
  medvault_bytes check = {0};
  CHECK(medvault_open(key, sealed, sealed_len, &check));
  if (check.len != size || memcmp(check.data, data, size) != 0) return 5;
  medvault_bytes_free(&check);
  printf("%llu %llu\n", (unsigned long long)elapsed, (unsigned long long)(checksum & 1));
  free(sealed);
  free(data);
  medvault_patient_key_free(key);
  medvault_master_key_free(master);
  return 0;
}
