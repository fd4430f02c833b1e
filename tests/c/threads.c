/*
 * Threads: two threads with separate provider handles seal, open and upload at once
 * into one shared cloud; two threads share one cloud, one requester and one patient
 * key (documented as safe for concurrent reads) and query at once; each thread's
 * medvault_last_error is its own.
 *
 *   threads WORK_DIR KEYS_DIR
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "medvault.h"
#include "common.h"

#define ROUNDS 12
static const char PROVIDER[] = "st-mary-hospital";
static const uint8_t PATIENT[] = "+15550100";
#define PATIENT_LEN (sizeof PATIENT - 1)
#define RECORDS 8

static medvault_cloud *cloud;
static medvault_requester *doctor_keys;
static medvault_patient_key *shared_key;
static medvault_bytes shared_sealed;
/* The labs' signing identity (one for both: each registers it under its own id). */
static medvault_identity *lab_identity;
static medvault_public_identity *lab_public;

static int must(medvault_status s, const char *what) {
  if (s != MEDVAULT_STATUS_OK) {
    char msg[512] = "";
    medvault_last_error(msg, sizeof msg, NULL);
    fprintf(stderr, "%s: status %u: %s\n", what, (unsigned)s, msg);
    return 0;
  }
  return 1;
}
#define MUST(call) \
  if (!must((call), #call)) return (void *)1

/* Separate handles: each thread is its own lab with its own keys and epochs. */
static void *own_provider(void *arg) {
  const char *id = arg;
  medvault_master_key *master = NULL;
  medvault_provider *lab = NULL;
  medvault_patient_key *key = NULL;
  MUST(medvault_master_key_generate(&master));
  MUST(medvault_cloud_register_provider(cloud, id, lab_public));
  MUST(medvault_provider_new(id, master, lab_identity, &lab));
  MUST(medvault_provider_patient_key(lab, PATIENT, PATIENT_LEN, &key));
  const char *keywords[] = {"glucose"};
  for (int round = 0; round < ROUNDS; round++) {
    char text[128];
    snprintf(text, sizeof text, "%s result %d: glucose %d mg/dL", id, round, 90 + round);
    uint8_t record[MEDVAULT_RECORD_ID_LEN];
    medvault_bytes sealed = {0}, plain = {0}, batch = {0};
    MUST(medvault_provider_add_record(lab, PATIENT, PATIENT_LEN, (const uint8_t *)text,
                                      strlen(text), keywords, 1, record, &sealed));
    MUST(medvault_open(key, sealed.data, sealed.len, &plain));
    if (plain.len != strlen(text) || memcmp(plain.data, text, plain.len) != 0) return (void *)1;
    MUST(medvault_provider_finish_batch(lab, &batch));
    MUST(medvault_cloud_ingest(cloud, batch.data, batch.len));
    MUST(medvault_cloud_put_record(cloud, sealed.data, sealed.len, NULL));
    medvault_bytes_free(&sealed);
    medvault_bytes_free(&plain);
    medvault_bytes_free(&batch);
  }
  /* This thread's own error message, untouched by the other threads. */
  if (medvault_cloud_open(NULL, NULL) != MEDVAULT_STATUS_NULL_ARGUMENT) return (void *)1;
  char msg[256];
  MUST(medvault_last_error(msg, sizeof msg, NULL));
  if (strstr(msg, "NULL argument: dir") == NULL) return (void *)1;
  medvault_patient_key_free(key);
  medvault_provider_free(lab);
  medvault_master_key_free(master);
  return NULL;
}

/* Shared read-only handles: one cloud, one requester, one patient key. */
static void *shared_reader(void *arg) {
  (void)arg;
  const char *keywords[] = {"diabetes"};
  for (int round = 0; round < ROUNDS; round++) {
    medvault_bytes manifest = {0}, query = {0}, response = {0}, plain = {0};
    medvault_prepared_query *prepared = NULL;
    medvault_search_results *results = NULL;
    MUST(medvault_cloud_manifest(cloud, &manifest));
    MUST(medvault_requester_query(doctor_keys, PATIENT, PATIENT_LEN, keywords, 1,
                                  MEDVAULT_COMBINE_AND, manifest.data, manifest.len, &prepared));
    MUST(medvault_prepared_query_bytes(prepared, &query));
    MUST(medvault_cloud_search(cloud, query.data, query.len, &response));
    MUST(medvault_requester_open_response(doctor_keys, prepared, response.data, response.len,
                                          &results));
    medvault_provider_results provider;
    MUST(medvault_search_results_provider(results, 0, &provider));
    if (provider.record_count != RECORDS) {
      fprintf(stderr, "expected %d records, got %zu\n", RECORDS, provider.record_count);
      return (void *)1;
    }
    MUST(medvault_open(shared_key, shared_sealed.data, shared_sealed.len, &plain));
    medvault_search_results_free(results);
    medvault_prepared_query_free(prepared);
    medvault_bytes_free(&manifest);
    medvault_bytes_free(&query);
    medvault_bytes_free(&response);
    medvault_bytes_free(&plain);
  }
  if (medvault_open(shared_key, NULL, 1, NULL) != MEDVAULT_STATUS_NULL_ARGUMENT) return (void *)1;
  char msg[256];
  MUST(medvault_last_error(msg, sizeof msg, NULL));
  if (strstr(msg, "NULL argument: sealed") == NULL) return (void *)1;
  return NULL;
}

static medvault_identity *identity_from(const char *keys, const char *who) {
  char sign[64], enc[64];
  snprintf(sign, sizeof sign, "%s-sign.pem", who);
  snprintf(enc, sizeof enc, "%s-enc.pem", who);
  char *s = read_text(keys, sign), *e = read_text(keys, enc);
  medvault_identity *id = NULL;
  if (!must(medvault_identity_from_pem(s, e, NULL, 0, &id), "identity")) exit(1);
  free(s);
  free(e);
  return id;
}

#define SETUP(call) \
  if (!must((call), #call)) return 1

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s WORK_DIR KEYS_DIR\n", argv[0]);
    return 2;
  }
  /* Every call of medvault's on its caller's thread (no pool), while the caller's
   * threads share handles: the answers must not change. (A pool of medvault's own is
   * checked by the Rust unit tests: its idle threads outlive main under valgrind.) */
  SETUP(medvault_set_threads(1));
  char store[1024];
  snprintf(store, sizeof store, "%s/cloud", argv[1]);
  SETUP(medvault_cloud_open(store, &cloud));

  /* The hospital uploads RECORDS notes; the doctor gets a grant. */
  medvault_identity *hospital_id = identity_from(argv[2], "provider-a");
  medvault_identity *doctor = identity_from(argv[2], "doctor");
  lab_identity = identity_from(argv[2], "provider-b");
  SETUP(medvault_identity_public(lab_identity, &lab_public));
  medvault_public_identity *hospital_pub = NULL;
  SETUP(medvault_identity_public(hospital_id, &hospital_pub));
  SETUP(medvault_cloud_register_provider(cloud, PROVIDER, hospital_pub));
  medvault_master_key *master = NULL;
  medvault_provider *hospital = NULL;
  SETUP(medvault_master_key_generate(&master));
  SETUP(medvault_provider_new(PROVIDER, master, hospital_id, &hospital));
  medvault_bytes notes[RECORDS] = {{0}};
  const char *keywords[] = {"diabetes"};
  for (int i = 0; i < RECORDS; i++) {
    char text[64];
    snprintf(text, sizeof text, "note %d: diabetes", i);
    uint8_t id[MEDVAULT_RECORD_ID_LEN];
    SETUP(medvault_provider_add_record(hospital, PATIENT, PATIENT_LEN, (const uint8_t *)text,
                                       strlen(text), keywords, 1, id, &notes[i]));
  }
  medvault_bytes batch = {0}, request = {0}, grant = {0};
  SETUP(medvault_provider_finish_batch(hospital, &batch));
  SETUP(medvault_cloud_ingest(cloud, batch.data, batch.len));
  for (int i = 0; i < RECORDS; i++) {
    SETUP(medvault_cloud_put_record(cloud, notes[i].data, notes[i].len, NULL));
    if (i == 0) {
      shared_sealed = notes[0];
    } else {
      medvault_bytes_free(&notes[i]);
    }
  }
  SETUP(medvault_provider_patient_key(hospital, PATIENT, PATIENT_LEN, &shared_key));

  medvault_pending_request *pending = NULL;
  medvault_opened_request *opened = NULL;
  uint64_t now = 1790000000;
  SETUP(medvault_access_request_create(doctor, "Dr. B", PROVIDER, hospital_pub,
                                       MEDVAULT_SCOPE_KIND_PATIENT, PATIENT, PATIENT_LEN, NULL,
                                       "care", now, &request, &pending));
  SETUP(medvault_access_request_open(request.data, request.len, hospital_id, &opened));
  SETUP(medvault_grant_issue(hospital, hospital_id, opened, -1, now, 3600, &grant));
  SETUP(medvault_requester_new(&doctor_keys));
  SETUP(medvault_requester_accept_grant(doctor_keys, grant.data, grant.len, pending, hospital_pub,
                                        doctor, now));

  pthread_t threads[4];
  char *labs[] = {"lab-one", "lab-two"};
  for (int i = 0; i < 2; i++) {
    if (pthread_create(&threads[i], NULL, own_provider, labs[i]) != 0) return 1;
    if (pthread_create(&threads[2 + i], NULL, shared_reader, NULL) != 0) return 1;
  }
  int failed = 0;
  for (int i = 0; i < 4; i++) {
    void *result = NULL;
    pthread_join(threads[i], &result);
    failed |= result != NULL;
  }
  SETUP(medvault_cloud_merge(cloud));

  medvault_bytes_free(&batch);
  medvault_bytes_free(&request);
  medvault_bytes_free(&grant);
  medvault_bytes_free(&shared_sealed);
  medvault_opened_request_free(opened);
  medvault_pending_request_free(pending);
  medvault_public_identity_free(hospital_pub);
  medvault_identity_free(hospital_id);
  medvault_public_identity_free(lab_public);
  medvault_identity_free(lab_identity);
  medvault_identity_free(doctor);
  medvault_requester_free(doctor_keys);
  medvault_patient_key_free(shared_key);
  medvault_provider_free(hospital);
  medvault_master_key_free(master);
  medvault_cloud_free(cloud);
  if (failed) {
    fprintf(stderr, "threads: a thread failed\n");
    return 1;
  }
  printf("threads: all checks passed\n");
  return 0;
}
