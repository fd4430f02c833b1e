/*
 * Misuse of the C ABI: NULL for every pointer argument, too-small buffers, freed-then-
 * NULL handles, garbage, truncated, tampered and replayed inputs, wrong keys, expired
 * grants. Each must return its documented status; run under valgrind, nothing leaks.
 *
 *   misuse WORK_DIR KEYS_DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medvault.h"
#include "common.h"

static int failures = 0;
static int checks = 0;

#define EXPECT(expected, call)                                                          \
  do {                                                                                  \
    medvault_status got_ = (call);                                                      \
    checks++;                                                                           \
    if (got_ != (expected)) {                                                           \
      char msg_[512] = "";                                                              \
      medvault_last_error(msg_, sizeof msg_, NULL);                                     \
      fprintf(stderr, "line %d: %s\n  expected %s, got %u (%s): %s\n", __LINE__, #call, \
              #expected, (unsigned)got_, medvault_status_message(got_), msg_);          \
      failures++;                                                                       \
    }                                                                                   \
  } while (0)
#define OK(call) EXPECT(MEDVAULT_STATUS_OK, call)
#define NUL(call) EXPECT(MEDVAULT_STATUS_NULL_ARGUMENT, call)
#define INVALID(call) EXPECT(MEDVAULT_STATUS_INVALID_ARGUMENT, call)
#define TRUE(cond)                                                         \
  do {                                                                     \
    checks++;                                                              \
    if (!(cond)) {                                                         \
      fprintf(stderr, "line %d: expected %s\n", __LINE__, #cond);          \
      failures++;                                                          \
    }                                                                      \
  } while (0)

static const char PROVIDER[] = "st-mary-hospital";
static const uint8_t PATIENT[] = "+15550100";
#define PATIENT_LEN (sizeof PATIENT - 1)

static medvault_identity *identity_from(const char *keys, const char *sign, const char *enc) {
  char *s = read_text(keys, sign), *e = read_text(keys, enc);
  medvault_identity *id = NULL;
  OK(medvault_identity_from_pem(s, e, NULL, 0, &id));
  free(s);
  free(e);
  return id;
}

/* A copy of `b` with one byte changed, or cut to `len`. */
static uint8_t *copy_of(const medvault_bytes *b) {
  uint8_t *c = malloc(b->len == 0 ? 1 : b->len);
  if (c == NULL) exit(2);
  memcpy(c, b->data, b->len);
  return c;
}

static void statuses_and_messages(void) {
  char buf[256];
  size_t needed = 0;
  TRUE(medvault_version() != NULL && strlen(medvault_version()) > 0);
  for (uint32_t s = 0; s < 40; s++) TRUE(medvault_status_message(s) != NULL);
  TRUE(strcmp(medvault_status_message(9999), "unknown status") == 0);
  /* Thread counts: absurd ones refused, serial and the default pool accepted. */
  INVALID(medvault_set_threads((size_t)-1));
  INVALID(medvault_set_threads(MEDVAULT_MAX_THREADS + 1));
  OK(medvault_set_threads(1));
  OK(medvault_set_threads(0));
  /* Produce an error, then read it with too small, NULL and right-sized buffers. */
  NUL(medvault_master_key_generate(NULL));
  EXPECT(MEDVAULT_STATUS_BUFFER_TOO_SMALL, medvault_last_error(NULL, 0, &needed));
  TRUE(needed > 10);
  EXPECT(MEDVAULT_STATUS_BUFFER_TOO_SMALL, medvault_last_error(buf, 5, NULL));
  NUL(medvault_last_error(NULL, sizeof buf, NULL));
  OK(medvault_last_error(buf, sizeof buf, &needed));
  TRUE(strstr(buf, "NULL argument: out") != NULL && needed == strlen(buf) + 1);
}

static void bytes_and_ids(void) {
  medvault_bytes empty = {0};
  medvault_bytes_free(NULL);
  medvault_bytes_free(&empty);
  medvault_bytes_free(&empty); /* twice: still a no-op */
  uint8_t id[MEDVAULT_RECORD_ID_LEN];
  char hex[MEDVAULT_RECORD_ID_HEX_LEN];
  NUL(medvault_record_id_generate(NULL));
  OK(medvault_record_id_generate(id));
  NUL(medvault_record_id_to_hex(NULL, hex, sizeof hex));
  NUL(medvault_record_id_to_hex(id, NULL, sizeof hex));
  EXPECT(MEDVAULT_STATUS_BUFFER_TOO_SMALL, medvault_record_id_to_hex(id, hex, sizeof hex - 1));
  OK(medvault_record_id_to_hex(id, hex, sizeof hex));
  TRUE(strlen(hex) == 32);
  TRUE(medvault_list_len(NULL) == 0);
  const uint8_t *data;
  size_t len;
  NUL(medvault_list_get(NULL, 0, &data, &len));
  medvault_list_free(NULL);
}

static void keys_and_key_files(medvault_master_key *master) {
  medvault_password_kdf kdf = medvault_password_kdf_default();
  TRUE(kdf.algorithm == MEDVAULT_KDF_ALGORITHM_ARGON2ID);
  medvault_password_kdf cheap = {MEDVAULT_KDF_ALGORITHM_PBKDF2_SHA256, 0, 100000, 0};
  medvault_password_kdf bogus = {77, 0, 100000, 0};
  const uint8_t pw[] = "correct horse";
  medvault_bytes file = {0}, provider_out = {0};
  NUL(medvault_key_file_lock(NULL, PROVIDER, pw, 13, &cheap, &file));
  NUL(medvault_key_file_lock(master, NULL, pw, 13, &cheap, &file));
  NUL(medvault_key_file_lock(master, PROVIDER, NULL, 13, &cheap, &file));
  NUL(medvault_key_file_lock(master, PROVIDER, pw, 13, &cheap, NULL));
  INVALID(medvault_key_file_lock(master, PROVIDER, pw, 0, &cheap, &file));
  INVALID(medvault_key_file_lock(master, PROVIDER, pw, 13, &bogus, &file));
  INVALID(medvault_key_file_lock(master, "Not A Provider!", pw, 13, &cheap, &file));
  OK(medvault_key_file_lock(master, PROVIDER, pw, 13, &cheap, &file));
  /* A non-empty output is refused rather than leaked. */
  INVALID(medvault_key_file_lock(master, PROVIDER, pw, 13, &cheap, &file));

  medvault_master_key *unlocked = NULL;
  NUL(medvault_key_file_unlock(NULL, file.len, pw, 13, &unlocked, NULL));
  NUL(medvault_key_file_unlock(file.data, file.len, NULL, 13, &unlocked, NULL));
  NUL(medvault_key_file_unlock(file.data, file.len, pw, 13, NULL, NULL));
  EXPECT(MEDVAULT_STATUS_WRONG_PASSWORD,
         medvault_key_file_unlock(file.data, file.len, (const uint8_t *)"wrong", 5, &unlocked, NULL));
  EXPECT(MEDVAULT_STATUS_TRUNCATED, medvault_key_file_unlock(file.data, 10, pw, 13, &unlocked, NULL));
  EXPECT(MEDVAULT_STATUS_CORRUPT,
         medvault_key_file_unlock(file.data, file.len / 2, pw, 13, &unlocked, NULL));
  EXPECT(MEDVAULT_STATUS_MALFORMED,
         medvault_key_file_unlock((const uint8_t *)"garbage garbage garbage", 23, pw, 13, &unlocked,
                                  NULL));
  uint8_t *bad = copy_of(&file);
  bad[4] = 99; /* the version byte */
  EXPECT(MEDVAULT_STATUS_UNSUPPORTED_VERSION,
         medvault_key_file_unlock(bad, file.len, pw, 13, &unlocked, NULL));
  memcpy(bad, file.data, file.len);
  bad[file.len - 40] ^= 1;
  EXPECT(MEDVAULT_STATUS_CORRUPT, medvault_key_file_unlock(bad, file.len, pw, 13, &unlocked, NULL));
  free(bad);
  OK(medvault_key_file_unlock(file.data, file.len, pw, 13, &unlocked, &provider_out));
  TRUE(provider_out.len == strlen(PROVIDER) && memcmp(provider_out.data, PROVIDER, provider_out.len) == 0);
  medvault_master_key_free(unlocked);
  medvault_master_key_free(NULL);
  medvault_bytes_free(&file);
  medvault_bytes_free(&provider_out);

  medvault_patient_key *key = NULL;
  NUL(medvault_patient_key_derive(NULL, PROVIDER, PATIENT, PATIENT_LEN, 0, &key));
  NUL(medvault_patient_key_derive(master, NULL, PATIENT, PATIENT_LEN, 0, &key));
  NUL(medvault_patient_key_derive(master, PROVIDER, NULL, PATIENT_LEN, 0, &key));
  NUL(medvault_patient_key_derive(master, PROVIDER, PATIENT, PATIENT_LEN, 0, NULL));
  INVALID(medvault_patient_key_derive(master, PROVIDER, PATIENT, 0, 0, &key));
  INVALID(medvault_patient_key_derive(master, "", PATIENT, PATIENT_LEN, 0, &key));
  /* Invalid UTF-8 in a string argument. */
  INVALID(medvault_patient_key_derive(master, "\xff\xfe", PATIENT, PATIENT_LEN, 0, &key));
  medvault_patient_key_free(NULL);
}

static void seal_and_open(medvault_master_key *master) {
  medvault_patient_key *key = NULL, *other_patient = NULL, *other_provider = NULL;
  OK(medvault_patient_key_derive(master, PROVIDER, PATIENT, PATIENT_LEN, 0, &key));
  OK(medvault_patient_key_derive(master, PROVIDER, (const uint8_t *)"+15550199", 9, 0, &other_patient));
  OK(medvault_patient_key_derive(master, "city-lab", PATIENT, PATIENT_LEN, 0, &other_provider));
  uint8_t id[MEDVAULT_RECORD_ID_LEN];
  OK(medvault_record_id_generate(id));
  const uint8_t note[] = "HbA1c 8.1 %; metformin 500 mg";
  medvault_bytes sealed = {0}, plain = {0};
  NUL(medvault_seal(NULL, id, note, sizeof note, &sealed));
  NUL(medvault_seal(key, NULL, note, sizeof note, &sealed));
  NUL(medvault_seal(key, id, NULL, sizeof note, &sealed));
  NUL(medvault_seal(key, id, note, sizeof note, NULL));
  OK(medvault_seal(key, id, NULL, 0, &sealed)); /* an empty record is fine */
  OK(medvault_open(key, sealed.data, sealed.len, &plain));
  TRUE(plain.len == 0 && plain.data == NULL);
  medvault_bytes_free(&sealed);
  OK(medvault_seal(key, id, note, sizeof note, &sealed));

  NUL(medvault_open(NULL, sealed.data, sealed.len, &plain));
  NUL(medvault_open(key, NULL, sealed.len, &plain));
  NUL(medvault_open(key, sealed.data, sealed.len, NULL));
  EXPECT(MEDVAULT_STATUS_AUTHENTICATION_FAILED, medvault_open(other_patient, sealed.data, sealed.len, &plain));
  EXPECT(MEDVAULT_STATUS_WRONG_KEY, medvault_open(other_provider, sealed.data, sealed.len, &plain));
  EXPECT(MEDVAULT_STATUS_TRUNCATED, medvault_open(key, sealed.data, 20, &plain));
  EXPECT(MEDVAULT_STATUS_MALFORMED, medvault_open(key, (const uint8_t *)"not a sealed record at all", 26, &plain));
  EXPECT(MEDVAULT_STATUS_TRUNCATED, medvault_open(key, NULL, 0, &plain));
  uint8_t *bad = copy_of(&sealed);
  for (size_t i = 0; i < sealed.len; i++) { /* every flipped byte is refused */
    bad[i] ^= 0x40;
    medvault_status s = medvault_open(key, bad, sealed.len, &plain);
    TRUE(s != MEDVAULT_STATUS_OK && plain.data == NULL);
    bad[i] ^= 0x40;
  }
  bad[4] = 2;
  EXPECT(MEDVAULT_STATUS_UNSUPPORTED_VERSION, medvault_open(key, bad, sealed.len, &plain));
  bad[4] = 1;
  bad[5] = 9;
  EXPECT(MEDVAULT_STATUS_UNSUPPORTED_ALGORITHM, medvault_open(key, bad, sealed.len, &plain));
  free(bad);
  OK(medvault_open(key, sealed.data, sealed.len, &plain));
  TRUE(plain.len == sizeof note && memcmp(plain.data, note, sizeof note) == 0);
  medvault_bytes_free(&plain);

  /* Into the caller's buffers: the same lengths, refusals before any write, no
     plaintext of a rejected record left behind. */
  size_t need = 0, got = 0, plain_need = 0, opened_len = 0;
  NUL(medvault_sealed_len(NULL, id, sizeof note, &need));
  NUL(medvault_sealed_len(key, NULL, sizeof note, &need));
  NUL(medvault_sealed_len(key, id, sizeof note, NULL));
  OK(medvault_sealed_len(key, id, sizeof note, &need));
  TRUE(need == sealed.len);
  uint8_t *buf = malloc(need + 1);
  TRUE(buf != NULL);
  NUL(medvault_seal_into(NULL, id, note, sizeof note, buf, need, &got));
  NUL(medvault_seal_into(key, NULL, note, sizeof note, buf, need, &got));
  NUL(medvault_seal_into(key, id, NULL, sizeof note, buf, need, &got));
  NUL(medvault_seal_into(key, id, note, sizeof note, NULL, need, &got));
  NUL(medvault_seal_into(key, id, note, sizeof note, buf, need, NULL));
  memset(buf, 0x77, need + 1);
  INVALID(medvault_seal_into(key, id, note, sizeof note, buf, need - 1, &got));
  TRUE(buf[0] == 0x77 && buf[need - 2] == 0x77);
  INVALID(medvault_seal_into(key, id, buf, 8, buf + 4, need - 4, &got)); /* overlap */
  OK(medvault_seal_into(key, id, note, sizeof note, buf, need + 1, &got));
  TRUE(got == need && buf[need] == 0x77);
  NUL(medvault_opened_len(NULL, got, &plain_need));
  NUL(medvault_opened_len(buf, got, NULL));
  EXPECT(MEDVAULT_STATUS_MALFORMED, medvault_opened_len((const uint8_t *)"garbage, not a record", 21, &plain_need));
  OK(medvault_opened_len(buf, got, &plain_need));
  TRUE(plain_need == sizeof note);
  uint8_t opened[sizeof note + 4];
  NUL(medvault_open_into(NULL, buf, got, opened, sizeof opened, &opened_len));
  NUL(medvault_open_into(key, NULL, got, opened, sizeof opened, &opened_len));
  NUL(medvault_open_into(key, buf, got, NULL, sizeof opened, &opened_len));
  NUL(medvault_open_into(key, buf, got, opened, sizeof opened, NULL));
  INVALID(medvault_open_into(key, buf, got, opened, sizeof note - 1, &opened_len));
  INVALID(medvault_open_into(key, buf, got, buf + 2, got, &opened_len)); /* overlap */
  EXPECT(MEDVAULT_STATUS_WRONG_KEY, medvault_open_into(other_provider, buf, got, opened, sizeof opened, &opened_len));
  OK(medvault_open_into(key, buf, got, opened, sizeof opened, &opened_len));
  TRUE(opened_len == sizeof note && memcmp(opened, note, sizeof note) == 0);
  buf[got - 1] ^= 1;
  memset(opened, 0x5a, sizeof opened);
  EXPECT(MEDVAULT_STATUS_AUTHENTICATION_FAILED, medvault_open_into(key, buf, got, opened, sizeof opened, &opened_len));
  for (size_t i = 0; i < sizeof opened; i++) {
    TRUE(opened[i] == (i < sizeof note ? 0 : 0x5a));
  }
  free(buf);

  /* Streaming: NULLs, use after finish, truncation, garbage. */
  medvault_sealer *sealer = NULL;
  medvault_bytes part = {0};
  NUL(medvault_sealer_init(NULL, id, &sealer));
  NUL(medvault_sealer_init(key, NULL, &sealer));
  NUL(medvault_sealer_init(key, id, NULL));
  OK(medvault_sealer_init(key, id, &sealer));
  NUL(medvault_sealer_update(NULL, note, sizeof note, &part));
  NUL(medvault_sealer_update(sealer, NULL, sizeof note, &part));
  NUL(medvault_sealer_update(sealer, note, sizeof note, NULL));
  OK(medvault_sealer_update(sealer, note, sizeof note, &part));
  TRUE(part.len == 0); /* a record of up to 256 KiB is held whole until _finish */
  uint8_t *scan = calloc(300 * 1024, 1);
  TRUE(scan != NULL);
  OK(medvault_sealer_update(sealer, scan, 300 * 1024, &part));
  free(scan);
  TRUE(part.len > 0); /* longer: the header and the first chunks come out */
  NUL(medvault_sealer_finish(NULL, &part));
  NUL(medvault_sealer_finish(sealer, NULL));
  INVALID(medvault_sealer_finish(sealer, &part)); /* `part` still holds the header */
  medvault_bytes_free(&part);
  OK(medvault_sealer_finish(sealer, &part));
  medvault_bytes_free(&part);
  INVALID(medvault_sealer_update(sealer, note, sizeof note, &part));
  INVALID(medvault_sealer_finish(sealer, &part));
  medvault_sealer_free(sealer);
  medvault_sealer_free(NULL);

  medvault_opener *opener = NULL;
  NUL(medvault_opener_init(NULL, &opener));
  NUL(medvault_opener_init(key, NULL));
  OK(medvault_opener_init(key, &opener));
  NUL(medvault_opener_update(NULL, sealed.data, sealed.len, &part));
  NUL(medvault_opener_update(opener, NULL, sealed.len, &part));
  NUL(medvault_opener_update(opener, sealed.data, sealed.len, NULL));
  NUL(medvault_opener_finish(NULL, &part));
  NUL(medvault_opener_finish(opener, NULL));
  OK(medvault_opener_update(opener, sealed.data, sealed.len - 1, &part));
  TRUE(part.len == 0); /* nothing verified yet: nothing handed out */
  EXPECT(MEDVAULT_STATUS_AUTHENTICATION_FAILED, medvault_opener_finish(opener, &part));
  INVALID(medvault_opener_finish(opener, &part)); /* spent */
  medvault_opener_free(opener);
  opener = NULL;
  NUL(medvault_opener_update(opener, sealed.data, sealed.len, &part)); /* freed, then NULL */
  OK(medvault_opener_init(key, &opener));
  EXPECT(MEDVAULT_STATUS_MALFORMED, medvault_opener_update(opener, (const uint8_t *)"garbage!", 8, &part));
  INVALID(medvault_opener_update(opener, sealed.data, sealed.len, &part));
  medvault_opener_free(opener);
  OK(medvault_opener_init(key, &opener));
  OK(medvault_opener_update(opener, sealed.data, 10, &part));
  EXPECT(MEDVAULT_STATUS_TRUNCATED, medvault_opener_finish(opener, &part));
  medvault_opener_free(opener);
  OK(medvault_opener_init(other_provider, &opener));
  EXPECT(MEDVAULT_STATUS_WRONG_KEY, medvault_opener_update(opener, sealed.data, sealed.len, &part));
  medvault_opener_free(opener);
  medvault_opener_free(NULL);

  medvault_bytes_free(&sealed);
  medvault_patient_key_free(key);
  medvault_patient_key_free(other_patient);
  medvault_patient_key_free(other_provider);
}

/* medvault_cloud_connect: bad arguments get their statuses; a server that cannot be
 * reached is MEDVAULT_STATUS_REMOTE with the transport's message, and no handle. */
static const char UNRELATED_CA[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBoTCCAUegAwIBAgIUNSSuzix92GRGJ58nfrKCiJ8EJ18wCgYIKoZIzj0EAwIw\n"
    "JTEjMCEGA1UEAwwabWVkdmF1bHQtdW5yZWxhdGVkLXRlc3QtY2EwIBcNMjYxMjA1\n"
    "MDMwNzE3WhgPMjEyNjExMTEwMzA3MTdaMCUxIzAhBgNVBAMMGm1lZHZhdWx0LXVu\n"
    "cmVsYXRlZC10ZXN0LWNhMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE0e9u2Ocf\n"
    "pXJ0fbBo8rlDdnZud1+fxfP2GrhUKOQV1iD/oc7GHqY6Eo3z8nWXBT4fUKzcSu3G\n"
    "60j20cGp/d7UOKNTMFEwHQYDVR0OBBYEFMBck+OU7iFT3zKyClPd8yA1WtzlMB8G\n"
    "A1UdIwQYMBaAFMBck+OU7iFT3zKyClPd8yA1WtzlMA8GA1UdEwEB/wQFMAMBAf8w\n"
    "CgYIKoZIzj0EAwIDSAAwRQIhAPcDDvAPPRlUP1gtLx8hppNfv3CDzt8LzFCCz7ON\n"
    "UjoqAiA/+5tbFMxZpiOcHdgoGgBM6PsQK8tuH01HyeI78s1Dyw==\n"
    "-----END CERTIFICATE-----\n";

static void remote_connect(void) {
  const uint8_t *ca = (const uint8_t *)UNRELATED_CA;
  size_t ca_len = sizeof UNRELATED_CA - 1;
  medvault_cloud *remote = NULL;
  NUL(medvault_cloud_connect(NULL, ca, ca_len, "lab", "password", &remote));
  NUL(medvault_cloud_connect("https://127.0.0.1:1", NULL, ca_len, "lab", "password", &remote));
  NUL(medvault_cloud_connect("https://127.0.0.1:1", ca, ca_len, NULL, "password", &remote));
  NUL(medvault_cloud_connect("https://127.0.0.1:1", ca, ca_len, "lab", NULL, &remote));
  NUL(medvault_cloud_connect("https://127.0.0.1:1", ca, ca_len, "lab", "password", NULL));
  INVALID(medvault_cloud_connect("https://127.0.0.1:1", (const uint8_t *)"not a pem", 9, "lab", "password", &remote));
  EXPECT(MEDVAULT_STATUS_REMOTE, medvault_cloud_connect("https://127.0.0.1:1", ca, ca_len, "lab", "password", &remote));
  TRUE(remote == NULL);
  char message[512];
  OK(medvault_last_error(message, sizeof message, NULL));
  TRUE(strstr(message, "remote cloud") != NULL);
}

/* medvault_account_register: NULLs, a role that does not match its keys, an unknown
 * role, a bad CA, and a server that cannot be reached. */
static void remote_register(const medvault_public_identity *requester_keys) {
  const uint8_t *ca = (const uint8_t *)UNRELATED_CA;
  size_t ca_len = sizeof UNRELATED_CA - 1;
  const char *url = "https://127.0.0.1:1";
  const char *password = "a long enough password";
  NUL(medvault_account_register(NULL, ca, ca_len, "lab", password, MEDVAULT_ROLE_PROVIDER, NULL));
  NUL(medvault_account_register(url, NULL, ca_len, "lab", password, MEDVAULT_ROLE_PROVIDER, NULL));
  NUL(medvault_account_register(url, ca, ca_len, NULL, password, MEDVAULT_ROLE_PROVIDER, NULL));
  NUL(medvault_account_register(url, ca, ca_len, "lab", NULL, MEDVAULT_ROLE_PROVIDER, NULL));
  INVALID(medvault_account_register(url, ca, ca_len, "dr", password, MEDVAULT_ROLE_REQUESTER, NULL));
  INVALID(medvault_account_register(url, ca, ca_len, "lab", password, MEDVAULT_ROLE_PROVIDER,
                                    requester_keys));
  INVALID(medvault_account_register(url, ca, ca_len, "lab", password, 0, NULL));
  INVALID(medvault_account_register(url, ca, ca_len, "lab", password, 3, NULL));
  INVALID(medvault_account_register(url, (const uint8_t *)"not a pem", 9, "lab", password,
                                    MEDVAULT_ROLE_PROVIDER, NULL));
  EXPECT(MEDVAULT_STATUS_REMOTE,
         medvault_account_register(url, ca, ca_len, "dr", password, MEDVAULT_ROLE_REQUESTER,
                                   requester_keys));
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s WORK_DIR KEYS_DIR\n", argv[0]);
    return 2;
  }
  char store[1024];
  snprintf(store, sizeof store, "%s/cloud", argv[1]);
  const char *keys = argv[2];

  statuses_and_messages();
  bytes_and_ids();
  remote_connect();
  medvault_master_key *master = NULL;
  OK(medvault_master_key_generate(&master));
  keys_and_key_files(master);
  seal_and_open(master);

  medvault_identity *hospital_id = identity_from(keys, "provider-a-sign.pem", "provider-a-enc.pem");
  medvault_identity *doctor = identity_from(keys, "doctor-sign.pem", "doctor-enc.pem");
  medvault_identity *other = identity_from(keys, "provider-b-sign.pem", "provider-b-enc.pem");

  /* ---- Provider: signs its batches with its identity's signing key. */
  medvault_provider *provider = NULL;
  NUL(medvault_provider_new(NULL, master, hospital_id, &provider));
  NUL(medvault_provider_new(PROVIDER, NULL, hospital_id, &provider));
  NUL(medvault_provider_new(PROVIDER, master, NULL, &provider));
  NUL(medvault_provider_new(PROVIDER, master, hospital_id, NULL));
  INVALID(medvault_provider_new("no spaces allowed", master, hospital_id, &provider));
  OK(medvault_provider_new(PROVIDER, master, hospital_id, &provider));
  const char *keywords[] = {"diabetes", "metformin"};
  const char *with_null[] = {"diabetes", NULL};
  const char *with_empty[] = {""};
  const uint8_t note[] = "2026-10-01 type 2 diabetes; metformin 500 mg";
  uint8_t id[MEDVAULT_RECORD_ID_LEN];
  medvault_bytes sealed = {0}, batch = {0}, state = {0};
  NUL(medvault_provider_add_record(NULL, PATIENT, PATIENT_LEN, note, sizeof note, keywords, 2, id, &sealed));
  NUL(medvault_provider_add_record(provider, NULL, PATIENT_LEN, note, sizeof note, keywords, 2, id, &sealed));
  NUL(medvault_provider_add_record(provider, PATIENT, PATIENT_LEN, NULL, sizeof note, keywords, 2, id, &sealed));
  NUL(medvault_provider_add_record(provider, PATIENT, PATIENT_LEN, note, sizeof note, NULL, 2, id, &sealed));
  NUL(medvault_provider_add_record(provider, PATIENT, PATIENT_LEN, note, sizeof note, with_null, 2, id, &sealed));
  NUL(medvault_provider_add_record(provider, PATIENT, PATIENT_LEN, note, sizeof note, keywords, 2, NULL, &sealed));
  NUL(medvault_provider_add_record(provider, PATIENT, PATIENT_LEN, note, sizeof note, keywords, 2, id, NULL));
  INVALID(medvault_provider_add_record(provider, PATIENT, PATIENT_LEN, note, sizeof note, with_empty, 1, id, &sealed));
  OK(medvault_provider_add_record(provider, PATIENT, PATIENT_LEN, note, sizeof note, keywords, 2, id, &sealed));
  medvault_sealer *sealer = NULL;
  uint8_t image_id[MEDVAULT_RECORD_ID_LEN];
  OK(medvault_record_id_generate(image_id)); /* an id the cloud does not hold */
  /* A record sealed elsewhere (a streamed image) is committed from its file. */
  char sealed_path[1100];
  snprintf(sealed_path, sizeof sealed_path, "%s/streamed.mvrc", argv[1]);
  FILE *streamed = fopen(sealed_path, "wb");
  if (streamed == NULL || fwrite(sealed.data, 1, sealed.len, streamed) != sealed.len) return 2;
  fclose(streamed);
  NUL(medvault_provider_commit_record_file(NULL, image_id, sealed_path));
  NUL(medvault_provider_commit_record_file(provider, NULL, sealed_path));
  NUL(medvault_provider_commit_record_file(provider, image_id, NULL));
  EXPECT(MEDVAULT_STATUS_IO, medvault_provider_commit_record_file(provider, image_id, "/nonexistent/sealed"));
  OK(medvault_provider_commit_record_file(provider, image_id, sealed_path));
  NUL(medvault_provider_sealer_init(NULL, PATIENT, PATIENT_LEN, image_id, &sealer));
  NUL(medvault_provider_sealer_init(provider, NULL, PATIENT_LEN, image_id, &sealer));
  NUL(medvault_provider_sealer_init(provider, PATIENT, PATIENT_LEN, NULL, &sealer));
  NUL(medvault_provider_sealer_init(provider, PATIENT, PATIENT_LEN, image_id, NULL));
  NUL(medvault_provider_index(NULL, PATIENT, PATIENT_LEN, id, keywords, 2));
  NUL(medvault_provider_index(provider, NULL, PATIENT_LEN, id, keywords, 2));
  NUL(medvault_provider_index(provider, PATIENT, PATIENT_LEN, NULL, keywords, 2));
  NUL(medvault_provider_index(provider, PATIENT, PATIENT_LEN, id, NULL, 2));
  NUL(medvault_provider_delete(NULL, PATIENT, PATIENT_LEN, id, keywords, 2));
  NUL(medvault_provider_delete(provider, NULL, PATIENT_LEN, id, keywords, 2));
  NUL(medvault_provider_delete(provider, PATIENT, PATIENT_LEN, NULL, keywords, 2));
  NUL(medvault_provider_delete(provider, PATIENT, PATIENT_LEN, id, NULL, 2));
  NUL(medvault_provider_finish_batch(NULL, &batch));
  NUL(medvault_provider_finish_batch(provider, NULL));
  NUL(medvault_provider_rotate(NULL, NULL));
  INVALID(medvault_provider_rotate(provider, NULL)); /* a batch is pending */
  NUL(medvault_provider_state(NULL, &state));
  NUL(medvault_provider_state(provider, NULL));
  medvault_patient_key *pkey = NULL;
  NUL(medvault_provider_patient_key(NULL, PATIENT, PATIENT_LEN, &pkey));
  NUL(medvault_provider_patient_key(provider, NULL, PATIENT_LEN, &pkey));
  NUL(medvault_provider_patient_key(provider, PATIENT, PATIENT_LEN, NULL));
  OK(medvault_provider_finish_batch(provider, &batch));
  OK(medvault_provider_state(provider, &state));
  medvault_provider *resumed = NULL;
  NUL(medvault_provider_resume(NULL, master, hospital_id, state.data, state.len, &resumed));
  NUL(medvault_provider_resume(PROVIDER, NULL, hospital_id, state.data, state.len, &resumed));
  NUL(medvault_provider_resume(PROVIDER, master, NULL, state.data, state.len, &resumed));
  NUL(medvault_provider_resume(PROVIDER, master, hospital_id, NULL, state.len, &resumed));
  NUL(medvault_provider_resume(PROVIDER, master, hospital_id, state.data, state.len, NULL));
  EXPECT(MEDVAULT_STATUS_TRUNCATED, medvault_provider_resume(PROVIDER, master, hospital_id, state.data, 3, &resumed));
  EXPECT(MEDVAULT_STATUS_MALFORMED, medvault_provider_resume(PROVIDER, master, hospital_id, (const uint8_t *)"garbage garbage!", 16, &resumed));
  OK(medvault_provider_resume(PROVIDER, master, hospital_id, state.data, state.len, &resumed));
  medvault_provider_free(resumed);
  medvault_provider_free(NULL);
  medvault_bytes_free(&state);

  /* ---- Cloud. */
  medvault_cloud *cloud = NULL, *second = NULL;
  NUL(medvault_cloud_open(NULL, &cloud));
  NUL(medvault_cloud_open(store, NULL));
  OK(medvault_cloud_open(store, &cloud));
  EXPECT(MEDVAULT_STATUS_STORE_LOCKED, medvault_cloud_open(store, &second));
  medvault_public_identity *hospital_pub = NULL, *doctor_pub = NULL, *imported = NULL;
  NUL(medvault_identity_public(NULL, &hospital_pub));
  NUL(medvault_identity_public(hospital_id, NULL));
  OK(medvault_identity_public(hospital_id, &hospital_pub));
  OK(medvault_identity_public(doctor, &doctor_pub));
  remote_register(doctor_pub);
  NUL(medvault_cloud_put_record(NULL, sealed.data, sealed.len, NULL));
  NUL(medvault_cloud_put_record(cloud, NULL, sealed.len, NULL));
  EXPECT(MEDVAULT_STATUS_MALFORMED, medvault_cloud_put_record(cloud, (const uint8_t *)"garbage garbage", 15, NULL));
  /* No signed batch commits the record yet: refused, nothing stored. */
  EXPECT(MEDVAULT_STATUS_NOT_AUTHENTIC, medvault_cloud_put_record(cloud, sealed.data, sealed.len, NULL));
  NUL(medvault_cloud_put_record_file(NULL, "x", NULL, NULL));
  NUL(medvault_cloud_put_record_file(cloud, NULL, NULL, NULL));
  EXPECT(MEDVAULT_STATUS_IO, medvault_cloud_put_record_file(cloud, "/nonexistent/sealed", NULL, NULL));
  medvault_bytes got = {0};
  NUL(medvault_cloud_get_record(NULL, PROVIDER, id, &got));
  NUL(medvault_cloud_get_record(cloud, NULL, id, &got));
  NUL(medvault_cloud_get_record(cloud, PROVIDER, NULL, &got));
  NUL(medvault_cloud_get_record(cloud, PROVIDER, id, NULL));
  EXPECT(MEDVAULT_STATUS_NOT_FOUND, medvault_cloud_get_record(cloud, PROVIDER, image_id, &got));
  NUL(medvault_cloud_get_record_file(NULL, PROVIDER, id, "x", NULL));
  NUL(medvault_cloud_get_record_file(cloud, NULL, id, "x", NULL));
  NUL(medvault_cloud_get_record_file(cloud, PROVIDER, NULL, "x", NULL));
  NUL(medvault_cloud_get_record_file(cloud, PROVIDER, id, NULL, NULL));
  EXPECT(MEDVAULT_STATUS_NOT_FOUND, medvault_cloud_get_record_file(cloud, PROVIDER, image_id, "x", NULL));
  NUL(medvault_cloud_ingest(NULL, batch.data, batch.len));
  NUL(medvault_cloud_ingest(cloud, NULL, batch.len));
  EXPECT(MEDVAULT_STATUS_MALFORMED, medvault_cloud_ingest(cloud, (const uint8_t *)"garbage garbage", 15));
  EXPECT(MEDVAULT_STATUS_TRUNCATED, medvault_cloud_ingest(cloud, batch.data, 5));
  EXPECT(MEDVAULT_STATUS_MALFORMED, medvault_cloud_ingest(cloud, batch.data, batch.len - 1));
  /* The provider is not in the directory yet: nothing is ingested. */
  EXPECT(MEDVAULT_STATUS_NOT_FOUND, medvault_cloud_ingest(cloud, batch.data, batch.len));
  NUL(medvault_cloud_register_provider(NULL, PROVIDER, hospital_pub));
  NUL(medvault_cloud_register_provider(cloud, NULL, hospital_pub));
  NUL(medvault_cloud_register_provider(cloud, PROVIDER, NULL));
  OK(medvault_cloud_register_provider(cloud, PROVIDER, hospital_pub));
  /* Every byte of the batch is under the provider's signature: any flip is refused,
   * with a typed status, and changes nothing. */
  int flipped_ok = 0;
  for (size_t at = 0; at < batch.len; at++) {
    uint8_t *flipped = copy_of(&batch);
    flipped[at] ^= 0x01;
    if (medvault_cloud_ingest(cloud, flipped, batch.len) == MEDVAULT_STATUS_OK) flipped_ok++;
    free(flipped);
  }
  TRUE(flipped_ok == 0);
  uint8_t *forged = copy_of(&batch);
  forged[batch.len - 1] ^= 0x80; /* a value byte: parses, but is not what was signed */
  EXPECT(MEDVAULT_STATUS_NOT_AUTHENTIC, medvault_cloud_ingest(cloud, forged, batch.len));
  free(forged);
  OK(medvault_cloud_ingest(cloud, batch.data, batch.len));
  EXPECT(MEDVAULT_STATUS_EPOCH_OUT_OF_ORDER, medvault_cloud_ingest(cloud, batch.data, batch.len)); /* replay */
  /* Now the batch commits the record: exactly those bytes are stored. */
  uint8_t *swapped = copy_of(&sealed);
  swapped[sealed.len - 1] ^= 0x01;
  EXPECT(MEDVAULT_STATUS_NOT_AUTHENTIC, medvault_cloud_put_record(cloud, swapped, sealed.len, NULL));
  /* Batches of records: all or none. A forged one, one given twice, garbage or none at
   * all refuse the batch and store nothing. */
  {
    const uint8_t *records[2] = {sealed.data, swapped};
    const uint8_t *twice[2] = {sealed.data, sealed.data};
    const uint8_t *garbage[1] = {(const uint8_t *)"garbage garbage"};
    size_t lens[2] = {sealed.len, sealed.len}, garbage_len[1] = {15};
    uint8_t ids[2 * MEDVAULT_RECORD_ID_LEN];
    NUL(medvault_cloud_put_records(NULL, records, lens, 1, ids));
    NUL(medvault_cloud_put_records(cloud, NULL, lens, 1, ids));
    NUL(medvault_cloud_put_records(cloud, records, NULL, 1, ids));
    INVALID(medvault_cloud_put_records(cloud, records, lens, 0, ids));
    EXPECT(MEDVAULT_STATUS_NOT_AUTHENTIC, medvault_cloud_put_records(cloud, records + 1, lens, 1, ids));
    INVALID(medvault_cloud_put_records(cloud, twice, lens, 2, ids));
    EXPECT(MEDVAULT_STATUS_MALFORMED, medvault_cloud_put_records(cloud, garbage, garbage_len, 1, ids));
    EXPECT(MEDVAULT_STATUS_NOT_FOUND, medvault_cloud_get_record(cloud, PROVIDER, id, &got));
    /* The record alone in a batch: stored, its id reported. */
    OK(medvault_cloud_put_records(cloud, records, lens, 1, ids));
    TRUE(memcmp(ids, id, MEDVAULT_RECORD_ID_LEN) == 0);
  }
  free(swapped);
  /* Stored once: a second upload, single or batched, is refused. */
  INVALID(medvault_cloud_put_record(cloud, sealed.data, sealed.len, NULL));
  /* A provider that lost its state (a fresh one under the same id) is refused the
   * epoch the cloud already has, and builds nothing: no epoch is used twice. */
  uint32_t next_epoch = 99;
  NUL(medvault_cloud_next_epoch(NULL, PROVIDER, &next_epoch));
  NUL(medvault_cloud_next_epoch(cloud, NULL, &next_epoch));
  NUL(medvault_cloud_next_epoch(cloud, PROVIDER, NULL));
  OK(medvault_cloud_next_epoch(cloud, PROVIDER, &next_epoch));
  TRUE(next_epoch == 1);
  OK(medvault_cloud_next_epoch(cloud, "unknown-provider", &next_epoch));
  TRUE(next_epoch == 0);
  medvault_provider *amnesiac = NULL;
  OK(medvault_provider_new(PROVIDER, master, hospital_id, &amnesiac));
  medvault_bytes reused = {0};
  NUL(medvault_provider_finish_batch_at(NULL, 1, &reused));
  NUL(medvault_provider_finish_batch_at(amnesiac, 1, NULL));
  EXPECT(MEDVAULT_STATUS_EPOCH_OUT_OF_ORDER, medvault_provider_finish_batch_at(amnesiac, 1, &reused));
  TRUE(reused.data == NULL && reused.len == 0);
  OK(medvault_provider_finish_batch_at(amnesiac, 0, &reused)); /* its own epoch 0, unsent */
  medvault_bytes_free(&reused);
  medvault_provider_free(amnesiac);
  NUL(medvault_cloud_merge(NULL));
  OK(medvault_cloud_merge(cloud));
  medvault_bytes manifest = {0};
  NUL(medvault_cloud_manifest(NULL, &manifest));
  NUL(medvault_cloud_manifest(cloud, NULL));
  OK(medvault_cloud_manifest(cloud, &manifest));
  medvault_bytes response = {0};
  NUL(medvault_cloud_search(NULL, manifest.data, manifest.len, &response));
  NUL(medvault_cloud_search(cloud, NULL, 5, &response));
  NUL(medvault_cloud_search(cloud, manifest.data, manifest.len, NULL));
  EXPECT(MEDVAULT_STATUS_MALFORMED, medvault_cloud_search(cloud, manifest.data, manifest.len, &response));

  /* ---- Identities. */
  medvault_identity *generated = NULL;
  NUL(medvault_identity_generate(2048, NULL));
  INVALID(medvault_identity_generate(1024, &generated));
  char *sign_pem = read_text(keys, "doctor-sign.pem");
  NUL(medvault_identity_from_pem(NULL, sign_pem, NULL, 0, &generated));
  NUL(medvault_identity_from_pem(sign_pem, NULL, NULL, 0, &generated));
  NUL(medvault_identity_from_pem(sign_pem, sign_pem, NULL, 0, NULL));
  INVALID(medvault_identity_from_pem(sign_pem, sign_pem, NULL, 0, &generated)); /* one key twice */
  TRUE(medvault_identity_from_pem("not a pem", sign_pem, NULL, 0, &generated) != MEDVAULT_STATUS_OK);
  free(sign_pem);
  medvault_bytes spem = {0}, dpem = {0};
  NUL(medvault_identity_to_pem(NULL, NULL, 0, &spem, &dpem));
  NUL(medvault_identity_to_pem(doctor, NULL, 0, NULL, &dpem));
  NUL(medvault_identity_to_pem(doctor, NULL, 0, &spem, NULL));
  OK(medvault_identity_to_pem(doctor, NULL, 0, &spem, &dpem));
  medvault_bytes_free(&spem);
  medvault_bytes_free(&dpem);
  medvault_bytes vpem = {0}, epem = {0};
  NUL(medvault_public_identity_to_pem(NULL, &vpem, &epem));
  NUL(medvault_public_identity_to_pem(doctor_pub, NULL, &epem));
  NUL(medvault_public_identity_to_pem(doctor_pub, &vpem, NULL));
  OK(medvault_public_identity_to_pem(doctor_pub, &vpem, &epem));
  char *v = calloc(1, vpem.len + 1), *e = calloc(1, epem.len + 1);
  if (v == NULL || e == NULL) return 2;
  memcpy(v, vpem.data, vpem.len);
  memcpy(e, epem.data, epem.len);
  NUL(medvault_public_identity_from_pem(NULL, e, &imported));
  NUL(medvault_public_identity_from_pem(v, NULL, &imported));
  NUL(medvault_public_identity_from_pem(v, e, NULL));
  TRUE(medvault_public_identity_from_pem("garbage", e, &imported) != MEDVAULT_STATUS_OK);
  OK(medvault_public_identity_from_pem(v, e, &imported));
  uint8_t fp1[MEDVAULT_FINGERPRINT_LEN], fp2[MEDVAULT_FINGERPRINT_LEN];
  NUL(medvault_public_identity_fingerprint(NULL, fp1));
  NUL(medvault_public_identity_fingerprint(imported, NULL));
  OK(medvault_public_identity_fingerprint(imported, fp1));
  OK(medvault_public_identity_fingerprint(doctor_pub, fp2));
  TRUE(memcmp(fp1, fp2, sizeof fp1) == 0);
  free(v);
  free(e);
  medvault_bytes_free(&vpem);
  medvault_bytes_free(&epem);
  medvault_public_identity_free(imported);
  medvault_public_identity_free(NULL);
  medvault_identity_free(NULL);

  /* ---- Requests and grants through the cloud. */
  /* First-come: the same keys again are fine; another party's keys cannot take the
   * provider's name (its pinned keys stay the hospital's, checked below). */
  OK(medvault_cloud_register_provider(cloud, PROVIDER, hospital_pub));
  EXPECT(MEDVAULT_STATUS_ALREADY_REGISTERED,
         medvault_cloud_register_provider(cloud, PROVIDER, doctor_pub));
  medvault_public_identity *pinned = NULL;
  NUL(medvault_cloud_provider_keys(NULL, PROVIDER, &pinned));
  NUL(medvault_cloud_provider_keys(cloud, NULL, &pinned));
  NUL(medvault_cloud_provider_keys(cloud, PROVIDER, NULL));
  EXPECT(MEDVAULT_STATUS_NOT_FOUND, medvault_cloud_provider_keys(cloud, "unknown-provider", &pinned));
  OK(medvault_cloud_provider_keys(cloud, PROVIDER, &pinned));
  uint64_t now = 1790000000;
  medvault_bytes request = {0};
  medvault_pending_request *pending = NULL;
#define REQ(r, n, p, k, kind, pat, rec, reason, out, pend) \
  medvault_access_request_create(r, n, p, k, kind, pat, PATIENT_LEN, rec, reason, now, out, pend)
  NUL(REQ(NULL, "Dr. A", PROVIDER, pinned, MEDVAULT_SCOPE_KIND_PATIENT, PATIENT, NULL, "care", &request, &pending));
  NUL(REQ(doctor, NULL, PROVIDER, pinned, MEDVAULT_SCOPE_KIND_PATIENT, PATIENT, NULL, "care", &request, &pending));
  NUL(REQ(doctor, "Dr. A", NULL, pinned, MEDVAULT_SCOPE_KIND_PATIENT, PATIENT, NULL, "care", &request, &pending));
  NUL(REQ(doctor, "Dr. A", PROVIDER, NULL, MEDVAULT_SCOPE_KIND_PATIENT, PATIENT, NULL, "care", &request, &pending));
  NUL(REQ(doctor, "Dr. A", PROVIDER, pinned, MEDVAULT_SCOPE_KIND_PATIENT, NULL, NULL, "care", &request, &pending));
  NUL(REQ(doctor, "Dr. A", PROVIDER, pinned, MEDVAULT_SCOPE_KIND_RECORD, PATIENT, NULL, "care", &request, &pending));
  NUL(REQ(doctor, "Dr. A", PROVIDER, pinned, MEDVAULT_SCOPE_KIND_PATIENT, PATIENT, NULL, NULL, &request, &pending));
  NUL(REQ(doctor, "Dr. A", PROVIDER, pinned, MEDVAULT_SCOPE_KIND_PATIENT, PATIENT, NULL, "care", NULL, &pending));
  NUL(REQ(doctor, "Dr. A", PROVIDER, pinned, MEDVAULT_SCOPE_KIND_PATIENT, PATIENT, NULL, "care", &request, NULL));
  INVALID(REQ(doctor, "Dr. A", PROVIDER, pinned, MEDVAULT_SCOPE_KIND_PATIENT, PATIENT, id, "care", &request, &pending));
  INVALID(REQ(doctor, "Dr. A", PROVIDER, pinned, 7, PATIENT, NULL, "care", &request, &pending));
  INVALID(REQ(doctor, "", PROVIDER, pinned, MEDVAULT_SCOPE_KIND_PATIENT, PATIENT, NULL, "care", &request, &pending));
  OK(REQ(doctor, "Dr. A", PROVIDER, pinned, MEDVAULT_SCOPE_KIND_PATIENT, PATIENT, NULL, "care", &request, &pending));
  uint8_t request_id[MEDVAULT_RECORD_ID_LEN];
  NUL(medvault_cloud_submit_request(NULL, request.data, request.len, request_id));
  NUL(medvault_cloud_submit_request(cloud, NULL, request.len, request_id));
  uint8_t *bad = copy_of(&request);
  bad[request.len - 10] ^= 1;
  EXPECT(MEDVAULT_STATUS_SIGNATURE_INVALID, medvault_cloud_submit_request(cloud, bad, request.len, request_id));
  free(bad);
  OK(medvault_cloud_submit_request(cloud, request.data, request.len, request_id));
  NUL(medvault_cloud_decide_request(NULL, request_id, true));
  NUL(medvault_cloud_decide_request(cloud, NULL, true));
  EXPECT(MEDVAULT_STATUS_NOT_FOUND, medvault_cloud_decide_request(cloud, id, true));
  OK(medvault_cloud_decide_request(cloud, request_id, true));

  medvault_admin_view *view = NULL;
  medvault_request_summary summary;
  medvault_file_details details;
  NUL(medvault_cloud_admin_view(NULL, &view));
  NUL(medvault_cloud_admin_view(cloud, NULL));
  OK(medvault_cloud_admin_view(cloud, &view));
  TRUE(medvault_admin_view_request_count(NULL) == 0 && medvault_admin_view_request_count(view) == 1);
  TRUE(medvault_admin_view_file_count(NULL) == 0 && medvault_admin_view_file_count(view) == 1);
  NUL(medvault_admin_view_request(NULL, 0, &summary));
  NUL(medvault_admin_view_request(view, 0, NULL));
  INVALID(medvault_admin_view_request(view, 1, &summary));
  OK(medvault_admin_view_request(view, 0, &summary));
  TRUE(strcmp(summary.requester_name, "Dr. A") == 0 && summary.status == MEDVAULT_REQUEST_STATUS_APPROVED);
  NUL(medvault_admin_view_file(NULL, 0, &details));
  NUL(medvault_admin_view_file(view, 0, NULL));
  INVALID(medvault_admin_view_file(view, 1, &details));
  OK(medvault_admin_view_file(view, 0, &details));
  TRUE(strcmp(details.provider_id, PROVIDER) == 0 && memcmp(details.record_id, id, 16) == 0);
  medvault_admin_view_free(view);
  medvault_admin_view_free(NULL);

  medvault_list *approved = NULL;
  NUL(medvault_cloud_approved_requests(NULL, PROVIDER, &approved));
  NUL(medvault_cloud_approved_requests(cloud, NULL, &approved));
  NUL(medvault_cloud_approved_requests(cloud, PROVIDER, NULL));
  OK(medvault_cloud_approved_requests(cloud, PROVIDER, &approved));
  TRUE(medvault_list_len(approved) == 1);
  const uint8_t *req_data;
  size_t req_len;
  NUL(medvault_list_get(approved, 0, NULL, &req_len));
  NUL(medvault_list_get(approved, 0, &req_data, NULL));
  INVALID(medvault_list_get(approved, 1, &req_data, &req_len));
  OK(medvault_list_get(approved, 0, &req_data, &req_len));
  medvault_opened_request *opened = NULL;
  NUL(medvault_access_request_open(NULL, req_len, hospital_id, &opened));
  NUL(medvault_access_request_open(req_data, req_len, NULL, &opened));
  NUL(medvault_access_request_open(req_data, req_len, hospital_id, NULL));
  EXPECT(MEDVAULT_STATUS_TRUNCATED, medvault_access_request_open(req_data, 12, hospital_id, &opened));
  TRUE(medvault_access_request_open(req_data, req_len, other, &opened) != MEDVAULT_STATUS_OK);
  OK(medvault_access_request_open(req_data, req_len, hospital_id, &opened));
  medvault_opened_request_info info;
  NUL(medvault_opened_request_get_info(NULL, &info));
  NUL(medvault_opened_request_get_info(opened, NULL));
  OK(medvault_opened_request_get_info(opened, &info));
  TRUE(info.patient_len == PATIENT_LEN && memcmp(info.patient, PATIENT, PATIENT_LEN) == 0);
  medvault_bytes grant = {0}, expired = {0};
  NUL(medvault_grant_issue(NULL, hospital_id, opened, -1, now, 3600, &grant));
  NUL(medvault_grant_issue(provider, NULL, opened, -1, now, 3600, &grant));
  NUL(medvault_grant_issue(provider, hospital_id, NULL, -1, now, 3600, &grant));
  NUL(medvault_grant_issue(provider, hospital_id, opened, -1, now, 3600, NULL));
  INVALID(medvault_grant_issue(provider, hospital_id, opened, -1, now, 0, &grant));
  INVALID(medvault_grant_issue(provider, hospital_id, opened, 5, now, 3600, &grant));
  OK(medvault_grant_issue(provider, hospital_id, opened, 0, now - 7200, 3600, &expired));
  OK(medvault_grant_issue(provider, hospital_id, opened, -1, now, 3600, &grant));
  medvault_opened_request_free(opened);
  medvault_opened_request_free(NULL);
  medvault_list_free(approved);
  NUL(medvault_cloud_post_grant(NULL, grant.data, grant.len));
  NUL(medvault_cloud_post_grant(cloud, NULL, grant.len));
  EXPECT(MEDVAULT_STATUS_MALFORMED, medvault_cloud_post_grant(cloud, (const uint8_t *)"garbage garbage", 15));
  OK(medvault_cloud_post_grant(cloud, grant.data, grant.len));
  medvault_list *grants = NULL;
  NUL(medvault_cloud_fetch_grants(NULL, doctor_pub, &grants));
  NUL(medvault_cloud_fetch_grants(cloud, NULL, &grants));
  NUL(medvault_cloud_fetch_grants(cloud, doctor_pub, NULL));
  OK(medvault_cloud_fetch_grants(cloud, doctor_pub, &grants));
  TRUE(medvault_list_len(grants) == 1);
  medvault_list_free(grants);

  /* ---- Requester. */
  medvault_requester *requester = NULL;
  NUL(medvault_requester_new(NULL));
  OK(medvault_requester_new(&requester));
  medvault_prepared_query *prepared = NULL;
  const char *words[] = {"diabetes"};
  EXPECT(MEDVAULT_STATUS_NOT_FOUND, medvault_requester_query(requester, PATIENT, PATIENT_LEN, words, 1, MEDVAULT_COMBINE_AND, manifest.data, manifest.len, &prepared));
  NUL(medvault_requester_accept_grant(NULL, grant.data, grant.len, pending, pinned, doctor, now));
  NUL(medvault_requester_accept_grant(requester, NULL, grant.len, pending, pinned, doctor, now));
  NUL(medvault_requester_accept_grant(requester, grant.data, grant.len, NULL, pinned, doctor, now));
  NUL(medvault_requester_accept_grant(requester, grant.data, grant.len, pending, NULL, doctor, now));
  NUL(medvault_requester_accept_grant(requester, grant.data, grant.len, pending, pinned, NULL, now));
  EXPECT(MEDVAULT_STATUS_EXPIRED, medvault_requester_accept_grant(requester, expired.data, expired.len, pending, pinned, doctor, now));
  EXPECT(MEDVAULT_STATUS_EXPIRED, medvault_requester_accept_grant(requester, grant.data, grant.len, pending, pinned, doctor, now + 7200));
  EXPECT(MEDVAULT_STATUS_WRONG_RECIPIENT, medvault_requester_accept_grant(requester, grant.data, grant.len, pending, pinned, other, now));
  EXPECT(MEDVAULT_STATUS_SIGNATURE_INVALID, medvault_requester_accept_grant(requester, grant.data, grant.len, pending, doctor_pub, doctor, now));
  bad = copy_of(&grant);
  bad[grant.len / 2] ^= 1;
  TRUE(medvault_requester_accept_grant(requester, bad, grant.len, pending, pinned, doctor, now) != MEDVAULT_STATUS_OK);
  free(bad);
  EXPECT(MEDVAULT_STATUS_TRUNCATED, medvault_requester_accept_grant(requester, grant.data, grant.len - 1, pending, pinned, doctor, now));
  OK(medvault_requester_accept_grant(requester, grant.data, grant.len, pending, pinned, doctor, now));
  /* Accepting the grant pinned the hospital's keys; other keys cannot replace them. */
  NUL(medvault_requester_trust_provider(NULL, PROVIDER, pinned));
  NUL(medvault_requester_trust_provider(requester, NULL, pinned));
  NUL(medvault_requester_trust_provider(requester, PROVIDER, NULL));
  INVALID(medvault_requester_trust_provider(requester, "Not An Id", pinned));
  OK(medvault_requester_trust_provider(requester, PROVIDER, pinned));
  EXPECT(MEDVAULT_STATUS_ALREADY_REGISTERED, medvault_requester_trust_provider(requester, PROVIDER, doctor_pub));
  /* A manifest whose log the hospital did not sign builds no query. After the merge the
   * manifest ends with one segment (a 4-byte count and 8 bytes); the byte before them
   * is the last of the hospital's head signature. */
  uint8_t *unsigned_manifest = copy_of(&manifest);
  unsigned_manifest[manifest.len - 13] ^= 0x01;
  EXPECT(MEDVAULT_STATUS_NOT_AUTHENTIC, medvault_requester_query(requester, PATIENT, PATIENT_LEN, words, 1, MEDVAULT_COMBINE_OR, unsigned_manifest, manifest.len, &prepared));
  free(unsigned_manifest);

#define QUERY(r, pat, w, n, c, m, out) \
  medvault_requester_query(r, pat, PATIENT_LEN, w, n, c, m, manifest.len, out)
  NUL(QUERY(NULL, PATIENT, words, 1, MEDVAULT_COMBINE_AND, manifest.data, &prepared));
  NUL(QUERY(requester, NULL, words, 1, MEDVAULT_COMBINE_AND, manifest.data, &prepared));
  NUL(QUERY(requester, PATIENT, NULL, 1, MEDVAULT_COMBINE_AND, manifest.data, &prepared));
  NUL(QUERY(requester, PATIENT, words, 1, MEDVAULT_COMBINE_AND, NULL, &prepared));
  NUL(QUERY(requester, PATIENT, words, 1, MEDVAULT_COMBINE_AND, manifest.data, NULL));
  INVALID(QUERY(requester, PATIENT, words, 0, MEDVAULT_COMBINE_AND, manifest.data, &prepared));
  INVALID(QUERY(requester, PATIENT, words, 1, 9, manifest.data, &prepared));
  /* Asking named providers only: each must be in the manifest with a key for the
   * patient, named once. */
#define QUERY_AT(r, pat, w, n, c, m, ps, pn, out) \
  medvault_requester_query_at(r, pat, PATIENT_LEN, w, n, c, m, manifest.len, ps, pn, out)
  {
    const char *at_hospital[] = {PROVIDER};
    const char *twice[] = {PROVIDER, PROVIDER};
    const char *unknown[] = {"no-such-clinic"};
    const char *not_an_id[] = {"Not An Id"};
    medvault_prepared_query *scoped = NULL;
    NUL(QUERY_AT(NULL, PATIENT, words, 1, MEDVAULT_COMBINE_OR, manifest.data, at_hospital, 1, &scoped));
    NUL(QUERY_AT(requester, PATIENT, words, 1, MEDVAULT_COMBINE_OR, manifest.data, NULL, 1, &scoped));
    NUL(QUERY_AT(requester, PATIENT, words, 1, MEDVAULT_COMBINE_OR, manifest.data, at_hospital, 1, NULL));
    INVALID(QUERY_AT(requester, PATIENT, words, 1, MEDVAULT_COMBINE_OR, manifest.data, at_hospital, 0, &scoped));
    INVALID(QUERY_AT(requester, PATIENT, words, 1, MEDVAULT_COMBINE_OR, manifest.data, twice, 2, &scoped));
    INVALID(QUERY_AT(requester, PATIENT, words, 1, MEDVAULT_COMBINE_OR, manifest.data, not_an_id, 1, &scoped));
    INVALID(QUERY_AT(requester, PATIENT, words, 1, 9, manifest.data, at_hospital, 1, &scoped));
    EXPECT(MEDVAULT_STATUS_NOT_FOUND, QUERY_AT(requester, PATIENT, words, 1, MEDVAULT_COMBINE_OR, manifest.data, unknown, 1, &scoped));
    TRUE(scoped == NULL);
    OK(QUERY_AT(requester, PATIENT, words, 1, MEDVAULT_COMBINE_OR, manifest.data, at_hospital, 1, &scoped));
    medvault_prepared_query_free(scoped);
  }
  OK(QUERY(requester, PATIENT, words, 1, MEDVAULT_COMBINE_OR, manifest.data, &prepared));
  medvault_bytes query = {0};
  NUL(medvault_prepared_query_bytes(NULL, &query));
  NUL(medvault_prepared_query_bytes(prepared, NULL));
  OK(medvault_prepared_query_bytes(prepared, &query));
  OK(medvault_cloud_search(cloud, query.data, query.len, &response));
  medvault_search_results *results = NULL;
  NUL(medvault_requester_open_response(NULL, prepared, response.data, response.len, &results));
  NUL(medvault_requester_open_response(requester, NULL, response.data, response.len, &results));
  NUL(medvault_requester_open_response(requester, prepared, NULL, response.len, &results));
  NUL(medvault_requester_open_response(requester, prepared, response.data, response.len, NULL));
  EXPECT(MEDVAULT_STATUS_TRUNCATED, medvault_requester_open_response(requester, prepared, response.data, response.len - 1, &results));
  EXPECT(MEDVAULT_STATUS_MALFORMED, medvault_requester_open_response(requester, prepared, (const uint8_t *)"garbage garbage", 15, &results));
  /* Every byte of the response is under a proof: the posting lists (each epoch's
   * blocks, the entries around where the list ends, the multiproof), the records and
   * theirs. A flip anywhere is refused, and a forged posting or a hidden epoch is
   * NOT_AUTHENTIC rather than a parse error. */
  int response_flips_ok = 0, response_not_authentic = 0;
  for (size_t at = 0; at < response.len; at++) {
    uint8_t *flipped = copy_of(&response);
    flipped[at] ^= 0x01;
    medvault_search_results *forged = NULL;
    medvault_status status = medvault_requester_open_response(requester, prepared, flipped, response.len, &forged);
    if (status == MEDVAULT_STATUS_OK) {
      response_flips_ok++;
      medvault_search_results_free(forged);
    }
    if (status == MEDVAULT_STATUS_NOT_AUTHENTIC) response_not_authentic++;
    free(flipped);
  }
  TRUE(response_flips_ok == 0);
  TRUE(response_not_authentic > 0);
  OK(medvault_requester_open_response(requester, prepared, response.data, response.len, &results));
  TRUE(medvault_search_results_provider_count(NULL) == 0 && medvault_search_results_provider_count(results) == 1);
  medvault_provider_results pr;
  medvault_opened_record rec;
  NUL(medvault_search_results_provider(NULL, 0, &pr));
  NUL(medvault_search_results_provider(results, 0, NULL));
  INVALID(medvault_search_results_provider(results, 1, &pr));
  OK(medvault_search_results_provider(results, 0, &pr));
  TRUE(pr.record_count == 1 && pr.missing_count == 0 && strcmp(pr.provider_id, PROVIDER) == 0);
  NUL(medvault_search_results_record(NULL, 0, 0, &rec));
  NUL(medvault_search_results_record(results, 0, 0, NULL));
  INVALID(medvault_search_results_record(results, 0, 1, &rec));
  INVALID(medvault_search_results_record(results, 1, 0, &rec));
  OK(medvault_search_results_record(results, 0, 0, &rec));
  TRUE(rec.plaintext_len == sizeof note && memcmp(rec.plaintext, note, sizeof note) == 0);
  medvault_search_results_free(results);
  medvault_search_results_free(NULL);
  medvault_bytes plain = {0};
  NUL(medvault_requester_open_record(NULL, PATIENT, PATIENT_LEN, sealed.data, sealed.len, &plain));
  NUL(medvault_requester_open_record(requester, PATIENT, PATIENT_LEN, NULL, sealed.len, &plain));
  NUL(medvault_requester_open_record(requester, PATIENT, PATIENT_LEN, sealed.data, sealed.len, NULL));
  EXPECT(MEDVAULT_STATUS_NOT_FOUND, medvault_requester_open_record(requester, NULL, 0, sealed.data, sealed.len, &plain));
  OK(medvault_requester_open_record(requester, PATIENT, PATIENT_LEN, sealed.data, sealed.len, &plain));
  medvault_bytes_free(&plain);
  medvault_prepared_query_free(prepared);
  medvault_prepared_query_free(NULL);

  /* ---- Re-keying, signed by the old key: the cloud and the requester follow it. */
  medvault_public_identity *other_pub = NULL;
  OK(medvault_identity_public(other, &other_pub));
  medvault_bytes rekey = {0}, forged_rekey = {0};
  NUL(medvault_rekey_issue(NULL, hospital_id, other_pub, &rekey));
  NUL(medvault_rekey_issue(PROVIDER, NULL, other_pub, &rekey));
  NUL(medvault_rekey_issue(PROVIDER, hospital_id, NULL, &rekey));
  NUL(medvault_rekey_issue(PROVIDER, hospital_id, other_pub, NULL));
  INVALID(medvault_rekey_issue(PROVIDER, hospital_id, hospital_pub, &rekey)); /* same key */
  OK(medvault_rekey_issue(PROVIDER, other, hospital_pub, &forged_rekey));      /* wrong signer */
  OK(medvault_rekey_issue(PROVIDER, hospital_id, other_pub, &rekey));
  NUL(medvault_cloud_rekey_provider(NULL, rekey.data, rekey.len));
  NUL(medvault_cloud_rekey_provider(cloud, NULL, rekey.len));
  EXPECT(MEDVAULT_STATUS_MALFORMED, medvault_cloud_rekey_provider(cloud, (const uint8_t *)"garbage garbage", 15));
  EXPECT(MEDVAULT_STATUS_SIGNATURE_INVALID, medvault_cloud_rekey_provider(cloud, forged_rekey.data, forged_rekey.len));
  OK(medvault_cloud_rekey_provider(cloud, rekey.data, rekey.len));
  EXPECT(MEDVAULT_STATUS_SIGNATURE_INVALID, medvault_cloud_rekey_provider(cloud, rekey.data, rekey.len)); /* replay */
  NUL(medvault_requester_follow_rekey(NULL, rekey.data, rekey.len));
  NUL(medvault_requester_follow_rekey(requester, NULL, rekey.len));
  EXPECT(MEDVAULT_STATUS_TRUNCATED, medvault_requester_follow_rekey(requester, rekey.data, 10));
  EXPECT(MEDVAULT_STATUS_SIGNATURE_INVALID, medvault_requester_follow_rekey(requester, forged_rekey.data, forged_rekey.len));
  OK(medvault_requester_follow_rekey(requester, rekey.data, rekey.len));
  /* Batches signed with the old key are refused from now on. */
  medvault_bytes old_signed = {0};
  OK(medvault_cloud_next_epoch(cloud, PROVIDER, &next_epoch));
  OK(medvault_provider_finish_batch_at(provider, next_epoch, &old_signed));
  EXPECT(MEDVAULT_STATUS_NOT_AUTHENTIC, medvault_cloud_ingest(cloud, old_signed.data, old_signed.len));
  medvault_bytes_free(&old_signed);
  medvault_bytes_free(&rekey);
  medvault_bytes_free(&forged_rekey);
  medvault_public_identity_free(other_pub);

  /* Freed, then NULL: every later call is a clean NULL_ARGUMENT. */
  medvault_requester_free(requester);
  requester = NULL;
  NUL(medvault_requester_open_record(requester, PATIENT, PATIENT_LEN, sealed.data, sealed.len, &plain));
  medvault_requester_free(NULL);
  medvault_provider_free(provider);
  provider = NULL;
  NUL(medvault_provider_finish_batch(provider, &batch));
  medvault_cloud_free(cloud);
  cloud = NULL;
  NUL(medvault_cloud_merge(cloud));
  medvault_cloud_free(NULL);

  medvault_bytes_free(&query);
  medvault_bytes_free(&response);
  medvault_bytes_free(&grant);
  medvault_bytes_free(&expired);
  medvault_bytes_free(&request);
  medvault_bytes_free(&manifest);
  medvault_bytes_free(&batch);
  medvault_bytes_free(&sealed);
  medvault_pending_request_free(pending);
  medvault_pending_request_free(NULL);
  medvault_public_identity_free(pinned);
  medvault_public_identity_free(hospital_pub);
  medvault_public_identity_free(doctor_pub);
  medvault_identity_free(hospital_id);
  medvault_identity_free(doctor);
  medvault_identity_free(other);
  medvault_master_key_free(master);

  if (failures > 0) {
    fprintf(stderr, "misuse: %d of %d checks failed\n", failures, checks);
    return 1;
  }
  printf("misuse: all checks passed (%d)\n", checks);
  return 0;
}
