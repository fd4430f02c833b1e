/*
 * An EHR-style C program on medvault's C ABI: a hospital seals and indexes three
 * clinical notes and a DICOM image, the cloud ingests and merges its encrypted index,
 * a doctor asks for access, receives a grant, queries "diabetes AND metformin" and
 * prints the decrypted results. Every status is checked.
 *
 *   ehr_demo [--cloud URL CA.pem ADMIN_PASSWORD_FILE] WORK_DIR IMAGE.dcm [KEYS_DIR]
 *
 * Without --cloud, WORK_DIR receives the cloud's store and every party uses it in this
 * process. With --cloud, the parties reach a fresh medvault-server at URL (trusting the
 * certificates in CA.pem): the hospital and the doctor register accounts and log in,
 * the admin logs in with the password in ADMIN_PASSWORD_FILE; the one call that differs
 * is how each party gets its medvault_cloud handle (connect_cloud below). KEYS_DIR, if
 * given, holds PKCS#8 PEM keys (provider-a-sign.pem, provider-a-enc.pem,
 * doctor-sign.pem, doctor-enc.pem); otherwise fresh 2048-bit RSA identities are
 * generated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "medvault.h"

static void fail(const char *call, medvault_status status) {
  char detail[512];
  if (medvault_last_error(detail, sizeof detail, NULL) != MEDVAULT_STATUS_OK) {
    detail[0] = '\0';
  }
  fprintf(stderr, "error: %s: %s (status %u): %s\n", call, medvault_status_message(status),
          (unsigned)status, detail);
  exit(1);
}

/* Every call goes through CHECK: a medical records program never ignores an error. */
#define CHECK(call)                                 \
  do {                                              \
    medvault_status status_ = (call);               \
    if (status_ != MEDVAULT_STATUS_OK) {            \
      fail(#call, status_);                         \
    }                                               \
  } while (0)

static const char HOSPITAL[] = "st-mary-hospital";
static const char PATIENT[] = "+15550100"; /* patients are found by mobile number */

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "error: cannot open %s\n", path);
    exit(1);
  }
  size_t cap = 1 << 16, used = 0;
  char *buf = malloc(cap + 1);
  size_t n;
  while (buf != NULL && (n = fread(buf + used, 1, cap - used, f)) > 0) {
    used += n;
    if (used == cap) {
      cap *= 2;
      char *grown = realloc(buf, cap + 1);
      if (grown == NULL) {
        free(buf);
      }
      buf = grown;
    }
  }
  fclose(f);
  if (buf == NULL) {
    fprintf(stderr, "error: out of memory\n");
    exit(1);
  }
  buf[used] = '\0';
  *len = used;
  return buf;
}

static medvault_identity *load_identity(const char *keys_dir, const char *who) {
  medvault_identity *identity = NULL;
  if (keys_dir == NULL) {
    CHECK(medvault_identity_generate(2048, &identity));
    return identity;
  }
  char path[1024];
  size_t len;
  snprintf(path, sizeof path, "%s/%s-sign.pem", keys_dir, who);
  char *signing = read_file(path, &len);
  snprintf(path, sizeof path, "%s/%s-enc.pem", keys_dir, who);
  char *decryption = read_file(path, &len);
  CHECK(medvault_identity_from_pem(signing, decryption, NULL, 0, &identity));
  free(signing);
  free(decryption);
  return identity;
}

/* Seals the image as a stream (64 KiB at a time, as a large scan would be) into a
 * file, then uploads that file; the library never holds the image whole. */
static void upload_image(medvault_provider *hospital,
                         const char *image_path, const char *sealed_path, uint8_t id[16]) {
  medvault_sealer *sealer = NULL;
  CHECK(medvault_provider_sealer_init(hospital, (const uint8_t *)PATIENT, strlen(PATIENT), id,
                                      &sealer));
  FILE *in = fopen(image_path, "rb");
  FILE *out = fopen(sealed_path, "wb");
  if (in == NULL || out == NULL) {
    fprintf(stderr, "error: cannot open %s or %s\n", image_path, sealed_path);
    exit(1);
  }
  static uint8_t piece[1 << 16];
  size_t n;
  while ((n = fread(piece, 1, sizeof piece, in)) > 0) {
    medvault_bytes sealed = {0};
    CHECK(medvault_sealer_update(sealer, piece, n, &sealed));
    if (sealed.len > 0 && fwrite(sealed.data, 1, sealed.len, out) != sealed.len) {
      fprintf(stderr, "error: cannot write %s\n", sealed_path);
      exit(1);
    }
    medvault_bytes_free(&sealed);
  }
  medvault_bytes last = {0};
  CHECK(medvault_sealer_finish(sealer, &last));
  if (fwrite(last.data, 1, last.len, out) != last.len || fclose(out) != 0) {
    fprintf(stderr, "error: cannot write %s\n", sealed_path);
    exit(1);
  }
  medvault_bytes_free(&last);
  medvault_sealer_free(sealer);
  fclose(in);
  /* The next batch commits the sealed file's digest; it is uploaded after the batch. */
  CHECK(medvault_provider_commit_record_file(hospital, id, sealed_path));
  printf("hospital: sealed the DICOM image as a stream\n");
}

/* Where the parties reach the cloud: a store in this process that all of them share, or
 * a medvault-server where each logs in to an account of its own. */
struct cloud_access {
  medvault_cloud *local; /* the shared store, or NULL */
  const char *url;
  char *ca;
  size_t ca_len;
  const char *admin_password_file;
};

/* A fresh random password for an account this demo registers (the server keeps only
 * its Argon2id hash). */
static void random_password(char out[33]) {
  uint8_t random[16];
  FILE *urandom = fopen("/dev/urandom", "rb");
  if (urandom == NULL || fread(random, 1, sizeof random, urandom) != sizeof random) {
    fprintf(stderr, "error: cannot read /dev/urandom\n");
    exit(1);
  }
  fclose(urandom);
  for (size_t i = 0; i < sizeof random; i++) {
    snprintf(out + 2 * i, 3, "%02x", random[i]);
  }
}

/* The handle one party uses. Against a server, a provider or a requester registers its
 * account first (a requester names its grant mailbox by its public keys); the admin
 * account is the server operator's. Locally, everyone shares one store. */
static medvault_cloud *connect_cloud(const struct cloud_access *access, const char *account,
                                     medvault_role role,
                                     const medvault_public_identity *requester_keys) {
  if (access->local != NULL) {
    return access->local;
  }
  char password[33];
  random_password(password);
  CHECK(medvault_account_register(access->url, (const uint8_t *)access->ca, access->ca_len,
                                  account, password, role, requester_keys));
  medvault_cloud *cloud = NULL;
  CHECK(medvault_cloud_connect(access->url, (const uint8_t *)access->ca, access->ca_len, account,
                               password, &cloud));
  memset(password, 0, sizeof password);
  printf("%s: registered and logged in to %s\n", account, access->url);
  return cloud;
}

/* The admin's handle: the account the server's operator made. */
static medvault_cloud *connect_admin(const struct cloud_access *access) {
  if (access->local != NULL) {
    return access->local;
  }
  size_t len;
  char *password = read_file(access->admin_password_file, &len);
  password[strcspn(password, "\r\n")] = '\0';
  medvault_cloud *cloud = NULL;
  CHECK(medvault_cloud_connect(access->url, (const uint8_t *)access->ca, access->ca_len, "admin",
                               password, &cloud));
  memset(password, 0, len);
  free(password);
  return cloud;
}

/* Lets go of a party's handle (the shared local one is freed once, at the end). */
static void release_cloud(const struct cloud_access *access, medvault_cloud *cloud) {
  if (cloud != access->local) {
    medvault_cloud_free(cloud);
  }
}

int main(int argc, char **argv) {
  struct cloud_access access = {0};
  int arg = 1;
  if (argc > 4 && strcmp(argv[1], "--cloud") == 0) {
    access.url = argv[2];
    access.ca = read_file(argv[3], &access.ca_len);
    access.admin_password_file = argv[4];
    arg = 5;
  }
  if (argc - arg < 2) {
    fprintf(stderr,
            "usage: %s [--cloud URL CA.pem ADMIN_PASSWORD_FILE] WORK_DIR IMAGE.dcm [KEYS_DIR]\n",
            argv[0]);
    return 2;
  }
  const char *work = argv[arg];
  const char *image_path = argv[arg + 1];
  const char *keys_dir = argc > arg + 2 ? argv[arg + 2] : NULL;
  uint64_t now = (uint64_t)time(NULL);
  printf("medvault %s\n", medvault_version());

  char store[1024], sealed_image[1024];
  snprintf(store, sizeof store, "%s/cloud", work);
  snprintf(sealed_image, sizeof sealed_image, "%s/image.sealed", work);
  if (access.url == NULL) {
    CHECK(medvault_cloud_open(store, &access.local));
  }
  medvault_cloud *admin_cloud = connect_admin(&access);

  /* ---- The hospital: keys, records, index. */
  medvault_master_key *master = NULL;
  medvault_provider *hospital = NULL;
  CHECK(medvault_master_key_generate(&master));
  /* Its RSA identity signs every index batch; the cloud checks it against the
   * directory, where the hospital registers first. */
  medvault_identity *hospital_identity = load_identity(keys_dir, "provider-a");
  CHECK(medvault_provider_new(HOSPITAL, master, hospital_identity, &hospital));
  medvault_public_identity *hospital_public = NULL;
  CHECK(medvault_identity_public(hospital_identity, &hospital_public));
  medvault_cloud *hospital_cloud = connect_cloud(&access, HOSPITAL, MEDVAULT_ROLE_PROVIDER, NULL);
  CHECK(medvault_cloud_register_provider(hospital_cloud, HOSPITAL, hospital_public));

  struct note {
    const char *text;
    const char *keywords[3];
    size_t keyword_count;
  } notes[] = {
      {"2026-10-01 Endocrinology: type 2 diabetes, HbA1c 8.1 %. Start metformin 500 mg.",
       {"diabetes", "metformin", "endocrinology"}, 3},
      {"2026-10-15 Lab: fasting glucose 162 mg/dL.", {"diabetes", "glucose"}, 2},
      {"2026-11-02 Cardiology: hypertension; lisinopril 10 mg daily.",
       {"hypertension", "lisinopril"}, 2},
  };
  medvault_bytes sealed_notes[3] = {{0}};
  for (size_t i = 0; i < sizeof notes / sizeof notes[0]; i++) {
    uint8_t id[MEDVAULT_RECORD_ID_LEN];
    CHECK(medvault_provider_add_record(hospital, (const uint8_t *)PATIENT, strlen(PATIENT),
                                       (const uint8_t *)notes[i].text, strlen(notes[i].text),
                                       notes[i].keywords, notes[i].keyword_count, id,
                                       &sealed_notes[i]));
  }
  uint8_t image_id[MEDVAULT_RECORD_ID_LEN];
  upload_image(hospital, image_path, sealed_image, image_id);
  const char *image_keywords[] = {"radiology", "dicom"};
  CHECK(medvault_provider_index(hospital, (const uint8_t *)PATIENT, strlen(PATIENT), image_id,
                                image_keywords, 2));
  /* Each batch is built for the epoch the cloud expects, and only if the hospital's saved
   * state agrees: a provider that lost its state never rebuilds a used epoch. */
  uint32_t next_epoch = 0;
  CHECK(medvault_cloud_next_epoch(hospital_cloud, HOSPITAL, &next_epoch));
  medvault_bytes batch = {0};
  CHECK(medvault_provider_finish_batch_at(hospital, next_epoch, &batch));
  CHECK(medvault_cloud_ingest(hospital_cloud, batch.data, batch.len));
  printf("hospital: 3 notes and 1 image sealed; signed index batch of %zu bytes ingested\n",
         batch.len);
  medvault_bytes_free(&batch);
  /* The batch committed the records: the cloud now stores exactly those bytes. */
  for (size_t i = 0; i < sizeof notes / sizeof notes[0]; i++) {
    CHECK(medvault_cloud_put_record(hospital_cloud, sealed_notes[i].data, sealed_notes[i].len, NULL));
    medvault_bytes_free(&sealed_notes[i]);
  }
  uint64_t size = 0;
  CHECK(medvault_cloud_put_record_file(hospital_cloud, sealed_image, NULL, &size));
  printf("hospital: uploaded the notes and the sealed image (%llu bytes)\n",
         (unsigned long long)size);

  /* A follow-up note in the next epoch, then the cloud merges both segments. */
  const char *follow_up = "2026-11-20 Follow-up: diabetes controlled on metformin 1000 mg.";
  const char *follow_up_keywords[] = {"diabetes", "metformin"};
  uint8_t follow_up_id[MEDVAULT_RECORD_ID_LEN];
  medvault_bytes sealed = {0};
  CHECK(medvault_provider_add_record(hospital, (const uint8_t *)PATIENT, strlen(PATIENT),
                                     (const uint8_t *)follow_up, strlen(follow_up),
                                     follow_up_keywords, 2, follow_up_id, &sealed));
  CHECK(medvault_cloud_next_epoch(hospital_cloud, HOSPITAL, &next_epoch));
  CHECK(medvault_provider_finish_batch_at(hospital, next_epoch, &batch));
  CHECK(medvault_cloud_ingest(hospital_cloud, batch.data, batch.len));
  medvault_bytes_free(&batch);
  CHECK(medvault_cloud_put_record(hospital_cloud, sealed.data, sealed.len, NULL));
  medvault_bytes_free(&sealed);
  CHECK(medvault_cloud_merge(admin_cloud));
  printf("cloud: ingested 2 batches and merged them, without any key\n");

  /* ---- The doctor asks for the patient's records through the cloud. */
  medvault_identity *doctor = load_identity(keys_dir, "doctor");
  medvault_public_identity *doctor_public = NULL;
  CHECK(medvault_identity_public(doctor, &doctor_public));
  medvault_cloud *doctor_cloud =
      connect_cloud(&access, "dr-ada-okafor", MEDVAULT_ROLE_REQUESTER, doctor_public);
  medvault_public_identity *pinned = NULL;
  CHECK(medvault_cloud_provider_keys(doctor_cloud, HOSPITAL, &pinned));
  medvault_bytes request = {0};
  medvault_pending_request *pending = NULL;
  CHECK(medvault_access_request_create(doctor, "Dr. Ada Okafor", HOSPITAL, pinned,
                                       MEDVAULT_SCOPE_KIND_PATIENT, (const uint8_t *)PATIENT,
                                       strlen(PATIENT), NULL, "diabetes follow-up", now,
                                       &request, &pending));
  uint8_t request_id[MEDVAULT_RECORD_ID_LEN];
  CHECK(medvault_cloud_submit_request(doctor_cloud, request.data, request.len, request_id));
  medvault_bytes_free(&request);

  /* The admin sees requests and file sizes: no patient, no keyword. */
  medvault_admin_view *view = NULL;
  CHECK(medvault_cloud_admin_view(admin_cloud, &view));
  for (size_t i = 0; i < medvault_admin_view_request_count(view); i++) {
    medvault_request_summary summary;
    CHECK(medvault_admin_view_request(view, i, &summary));
    printf("admin: request from %s to %s, reason \"%s\", status %u\n", summary.requester_name,
           summary.provider_id, summary.reason, (unsigned)summary.status);
  }
  printf("admin: %zu sealed files stored\n", medvault_admin_view_file_count(view));
  medvault_admin_view_free(view);
  CHECK(medvault_cloud_decide_request(admin_cloud, request_id, true));

  /* The hospital opens the approved request and grants the patient key. */
  medvault_list *approved = NULL;
  CHECK(medvault_cloud_approved_requests(hospital_cloud, HOSPITAL, &approved));
  for (size_t i = 0; i < medvault_list_len(approved); i++) {
    const uint8_t *data;
    size_t len;
    CHECK(medvault_list_get(approved, i, &data, &len));
    medvault_opened_request *opened = NULL;
    CHECK(medvault_access_request_open(data, len, hospital_identity, &opened));
    medvault_opened_request_info info;
    CHECK(medvault_opened_request_get_info(opened, &info));
    printf("hospital: %s asks for patient %.*s; granting for 30 days\n", info.requester_name,
           (int)info.patient_len, (const char *)info.patient);
    medvault_bytes grant = {0};
    CHECK(medvault_grant_issue(hospital, hospital_identity, opened, -1, now, 30 * 86400, &grant));
    CHECK(medvault_cloud_post_grant(hospital_cloud, grant.data, grant.len));
    medvault_bytes_free(&grant);
    medvault_opened_request_free(opened);
  }
  medvault_list_free(approved);

  /* The doctor receives the sealed grant and opens it. */
  medvault_requester *requester = NULL;
  CHECK(medvault_requester_new(&requester));
  medvault_list *grants = NULL;
  CHECK(medvault_cloud_fetch_grants(doctor_cloud, doctor_public, &grants));
  for (size_t i = 0; i < medvault_list_len(grants); i++) {
    const uint8_t *data;
    size_t len;
    CHECK(medvault_list_get(grants, i, &data, &len));
    CHECK(medvault_requester_accept_grant(requester, data, len, pending, pinned, doctor, now));
  }
  printf("doctor: accepted %zu grant(s)\n", medvault_list_len(grants));
  medvault_list_free(grants);

  /* ---- One query; the cloud answers without learning the keywords. */
  medvault_bytes manifest = {0};
  CHECK(medvault_cloud_manifest(doctor_cloud, &manifest));
  const char *keywords[] = {"diabetes", "metformin"};
  medvault_prepared_query *prepared = NULL;
  CHECK(medvault_requester_query(requester, (const uint8_t *)PATIENT, strlen(PATIENT), keywords,
                                 2, MEDVAULT_COMBINE_AND, manifest.data, manifest.len,
                                 &prepared));
  medvault_bytes_free(&manifest);
  medvault_bytes query = {0}, response = {0};
  CHECK(medvault_prepared_query_bytes(prepared, &query));
  CHECK(medvault_cloud_search(doctor_cloud, query.data, query.len, &response));
  printf("cloud: answered a %zu-byte query with a %zu-byte response\n", query.len, response.len);
  medvault_search_results *results = NULL;
  CHECK(medvault_requester_open_response(requester, prepared, response.data, response.len,
                                         &results));
  medvault_bytes_free(&query);
  medvault_bytes_free(&response);
  size_t total = 0;
  for (size_t p = 0; p < medvault_search_results_provider_count(results); p++) {
    medvault_provider_results provider;
    CHECK(medvault_search_results_provider(results, p, &provider));
    for (size_t r = 0; r < provider.record_count; r++) {
      medvault_opened_record record;
      CHECK(medvault_search_results_record(results, p, r, &record));
      char hex[MEDVAULT_RECORD_ID_HEX_LEN];
      CHECK(medvault_record_id_to_hex(record.record_id, hex, sizeof hex));
      printf("doctor: %s record %.8s…: %.*s\n", provider.provider_id, hex,
             (int)record.plaintext_len, (const char *)record.plaintext);
      total++;
    }
  }
  printf("doctor: diabetes AND metformin found %zu records\n", total);
  medvault_search_results_free(results);
  medvault_prepared_query_free(prepared);

  /* ---- The image: the doctor opens it whole; the hospital streams it back. */
  medvault_bytes sealed_scan = {0}, scan = {0};
  CHECK(medvault_cloud_get_record(doctor_cloud, HOSPITAL, image_id, &sealed_scan));
  CHECK(medvault_requester_open_record(requester, (const uint8_t *)PATIENT, strlen(PATIENT),
                                       sealed_scan.data, sealed_scan.len, &scan));
  size_t original_len;
  char *original = read_file(image_path, &original_len);
  int identical = scan.len == original_len && memcmp(scan.data, original, original_len) == 0;
  printf("doctor: opened the %zu-byte image, %s\n", scan.len,
         identical ? "identical to the original" : "DIFFERENT FROM THE ORIGINAL");

  medvault_patient_key *patient_key = NULL;
  medvault_opener *opener = NULL;
  CHECK(medvault_provider_patient_key(hospital, (const uint8_t *)PATIENT, strlen(PATIENT),
                                      &patient_key));
  CHECK(medvault_opener_init(patient_key, &opener));
  size_t streamed = 0;
  int stream_ok = 1;
  for (size_t at = 0; at < sealed_scan.len; at += 5000) {
    size_t n = sealed_scan.len - at < 5000 ? sealed_scan.len - at : 5000;
    medvault_bytes plain = {0};
    CHECK(medvault_opener_update(opener, sealed_scan.data + at, n, &plain));
    stream_ok &= streamed + plain.len <= original_len &&
                 (plain.len == 0 || memcmp(plain.data, original + streamed, plain.len) == 0);
    streamed += plain.len;
    medvault_bytes_free(&plain);
  }
  medvault_bytes last_plain = {0};
  CHECK(medvault_opener_finish(opener, &last_plain));
  stream_ok &= streamed + last_plain.len == original_len &&
               (last_plain.len == 0 ||
                memcmp(last_plain.data, original + streamed, last_plain.len) == 0);
  streamed += last_plain.len;
  medvault_bytes_free(&last_plain);
  printf("hospital: streamed the image back in 5000-byte pieces: %zu bytes, %s\n", streamed,
         stream_ok ? "identical" : "DIFFERENT");
  medvault_opener_free(opener);
  medvault_patient_key_free(patient_key);
  free(original);
  medvault_bytes_free(&scan);
  medvault_bytes_free(&sealed_scan);

  medvault_requester_free(requester);
  medvault_pending_request_free(pending);
  medvault_public_identity_free(pinned);
  medvault_public_identity_free(doctor_public);
  medvault_identity_free(doctor);
  medvault_public_identity_free(hospital_public);
  medvault_identity_free(hospital_identity);
  medvault_provider_free(hospital);
  medvault_master_key_free(master);
  release_cloud(&access, doctor_cloud);
  release_cloud(&access, hospital_cloud);
  release_cloud(&access, admin_cloud);
  medvault_cloud_free(access.local);
  free(access.ca);
  if (total != 2 || !identical || !stream_ok) {
    fprintf(stderr, "error: unexpected results\n");
    return 1;
  }
  printf("done\n");
  return 0;
}
