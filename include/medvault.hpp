// medvault.hpp: a header-only C++20 RAII wrapper over medvault.h.
//
// Handles are std::unique_ptr with the matching _free as deleter; every failing status
// throws medvault::error carrying the status and the library's message; byte inputs are
// std::span, byte outputs std::vector (wiped by the library before its buffer is
// freed). Thread-safety is that of the C handle (see medvault.h).
#ifndef MEDVAULT_HPP
#define MEDVAULT_HPP

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "medvault.h"

namespace medvault {

using byte_span = std::span<const std::uint8_t>;
using record_id = std::array<std::uint8_t, MEDVAULT_RECORD_ID_LEN>;

// A failed call: the status and the message medvault_last_error gave.
class error : public std::runtime_error {
 public:
  error(medvault_status status, const std::string &message)
      : std::runtime_error(message), status_(status) {}
  medvault_status status() const noexcept { return status_; }

 private:
  medvault_status status_;
};

inline std::string last_error() {
  std::size_t needed = 0;
  medvault_last_error(nullptr, 0, &needed);
  std::string message(needed, '\0');
  if (needed == 0 || medvault_last_error(message.data(), message.size(), nullptr) !=
                         MEDVAULT_STATUS_OK) {
    return {};
  }
  message.resize(needed - 1);
  return message;
}

inline void check(medvault_status status) {
  if (status != MEDVAULT_STATUS_OK) {
    throw error(status, std::string(medvault_status_message(status)) + ": " + last_error());
  }
}

// Chooses the threads medvault's parallel work runs on: 0 the default pool, 1 the
// calling thread only, n a pool of medvault's own (at most MEDVAULT_MAX_THREADS).
inline void set_threads(std::size_t threads) { check(medvault_set_threads(threads)); }

inline byte_span bytes_of(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t *>(text.data()), text.size()};
}

// Runs a call that fills a medvault_bytes, and returns its contents as a vector.
template <class Call>
std::vector<std::uint8_t> take_bytes(Call &&call) {
  medvault_bytes out{};
  check(call(&out));
  std::vector<std::uint8_t> copy(out.data, out.data + out.len);
  medvault_bytes_free(&out);
  return copy;
}

template <class T, void (*Free)(T *)>
struct deleter {
  void operator()(T *p) const noexcept { Free(p); }
};
template <class T, void (*Free)(T *)>
using handle = std::unique_ptr<T, deleter<T, Free>>;

// Creates a handle through an out-parameter call.
template <class T, void (*Free)(T *), class Call>
handle<T, Free> make(Call &&call) {
  T *raw = nullptr;
  check(call(&raw));
  return handle<T, Free>(raw);
}

inline std::vector<const char *> c_strings(const std::vector<std::string> &words) {
  std::vector<const char *> out;
  out.reserve(words.size());
  for (const auto &w : words) out.push_back(w.c_str());
  return out;
}

class master_key {
 public:
  static master_key generate() {
    return master_key(make<medvault_master_key, medvault_master_key_free>(
        [](medvault_master_key **out) { return medvault_master_key_generate(out); }));
  }
  const medvault_master_key *get() const noexcept { return key_.get(); }

 private:
  explicit master_key(handle<medvault_master_key, medvault_master_key_free> key)
      : key_(std::move(key)) {}
  handle<medvault_master_key, medvault_master_key_free> key_;
};

class public_identity {
 public:
  explicit public_identity(medvault_public_identity *raw) : p_(raw) {}
  const medvault_public_identity *get() const noexcept { return p_.get(); }

 private:
  handle<medvault_public_identity, medvault_public_identity_free> p_;
};

class identity {
 public:
  static identity generate(std::uint32_t bits) {
    return identity(make<medvault_identity, medvault_identity_free>(
        [&](medvault_identity **out) { return medvault_identity_generate(bits, out); }));
  }
  static identity from_pem(const std::string &signing, const std::string &decryption) {
    return identity(make<medvault_identity, medvault_identity_free>([&](medvault_identity **out) {
      return medvault_identity_from_pem(signing.c_str(), decryption.c_str(), nullptr, 0, out);
    }));
  }
  public_identity public_keys() const {
    medvault_public_identity *raw = nullptr;
    check(medvault_identity_public(p_.get(), &raw));
    return public_identity(raw);
  }
  const medvault_identity *get() const noexcept { return p_.get(); }

 private:
  explicit identity(handle<medvault_identity, medvault_identity_free> p) : p_(std::move(p)) {}
  handle<medvault_identity, medvault_identity_free> p_;
};

// A provider's sealed record: its id and the bytes to upload.
struct sealed_record {
  record_id id;
  std::vector<std::uint8_t> bytes;
};

class sealer {
 public:
  explicit sealer(medvault_sealer *raw) : p_(raw) {}
  std::vector<std::uint8_t> update(byte_span input) {
    return take_bytes([&](medvault_bytes *out) {
      return medvault_sealer_update(p_.get(), input.data(), input.size(), out);
    });
  }
  std::vector<std::uint8_t> finish() {
    return take_bytes([&](medvault_bytes *out) { return medvault_sealer_finish(p_.get(), out); });
  }

 private:
  handle<medvault_sealer, medvault_sealer_free> p_;
};

class opener {
 public:
  explicit opener(const medvault_patient_key *key)
      : p_(make<medvault_opener, medvault_opener_free>(
            [&](medvault_opener **out) { return medvault_opener_init(key, out); })) {}
  std::vector<std::uint8_t> update(byte_span sealed) {
    return take_bytes([&](medvault_bytes *out) {
      return medvault_opener_update(p_.get(), sealed.data(), sealed.size(), out);
    });
  }
  std::vector<std::uint8_t> finish() {
    return take_bytes([&](medvault_bytes *out) { return medvault_opener_finish(p_.get(), out); });
  }

 private:
  handle<medvault_opener, medvault_opener_free> p_;
};

using patient_key = handle<medvault_patient_key, medvault_patient_key_free>;

class provider {
 public:
  // A provider signing its batches with `signer`'s signing key (the identity it
  // registers with the cloud).
  provider(const std::string &id, const master_key &master, const identity &signer)
      : id_(id), p_(make<medvault_provider, medvault_provider_free>([&](medvault_provider **out) {
          return medvault_provider_new(id.c_str(), master.get(), signer.get(), out);
        })) {}
  const std::string &id() const noexcept { return id_; }

  sealed_record add_record(std::string_view patient, byte_span plaintext,
                           const std::vector<std::string> &keywords) {
    sealed_record record{};
    auto words = c_strings(keywords);
    record.bytes = take_bytes([&](medvault_bytes *out) {
      return medvault_provider_add_record(p_.get(), bytes_of(patient).data(), patient.size(),
                                          plaintext.data(), plaintext.size(), words.data(),
                                          words.size(), record.id.data(), out);
    });
    return record;
  }
  sealer start_record(std::string_view patient, record_id &id) {
    medvault_sealer *raw = nullptr;
    check(medvault_provider_sealer_init(p_.get(), bytes_of(patient).data(), patient.size(),
                                        id.data(), &raw));
    return sealer(raw);
  }
  // Commits a record sealed to a file (with start_record) to the next batch; upload
  // the batch before the file.
  void commit_record_file(const record_id &id, const std::string &path) {
    check(medvault_provider_commit_record_file(p_.get(), id.data(), path.c_str()));
  }
  void index(std::string_view patient, const record_id &id,
             const std::vector<std::string> &keywords) {
    auto words = c_strings(keywords);
    check(medvault_provider_index(p_.get(), bytes_of(patient).data(), patient.size(), id.data(),
                                  words.data(), words.size()));
  }
  std::vector<std::uint8_t> finish_batch() {
    return take_bytes(
        [&](medvault_bytes *out) { return medvault_provider_finish_batch(p_.get(), out); });
  }
  // The batch of `expected_epoch` (the cloud's `next_epoch`), only if it is also this
  // provider's next epoch: a provider that lost its state never rebuilds a used epoch.
  std::vector<std::uint8_t> finish_batch_at(std::uint32_t expected_epoch) {
    return take_bytes([&](medvault_bytes *out) {
      return medvault_provider_finish_batch_at(p_.get(), expected_epoch, out);
    });
  }
  patient_key key_of(std::string_view patient) const {
    return make<medvault_patient_key, medvault_patient_key_free>([&](medvault_patient_key **out) {
      return medvault_provider_patient_key(p_.get(), bytes_of(patient).data(), patient.size(),
                                           out);
    });
  }
  // Issues a grant (current key generation) answering an opened request.
  std::vector<std::uint8_t> grant(const identity &me, const medvault_opened_request *request,
                                  std::uint64_t now, std::uint64_t lifetime) const {
    return take_bytes([&](medvault_bytes *out) {
      return medvault_grant_issue(p_.get(), me.get(), request, -1, now, lifetime, out);
    });
  }

 private:
  std::string id_;
  handle<medvault_provider, medvault_provider_free> p_;
};

// A list of byte strings (requests, grants) copied out of a medvault_list.
inline std::vector<std::vector<std::uint8_t>> take_list(medvault_list *raw) {
  handle<medvault_list, medvault_list_free> list(raw);
  std::vector<std::vector<std::uint8_t>> out;
  for (std::size_t i = 0; i < medvault_list_len(list.get()); i++) {
    const std::uint8_t *data = nullptr;
    std::size_t len = 0;
    check(medvault_list_get(list.get(), i, &data, &len));
    out.emplace_back(data, data + len);
  }
  return out;
}

// The cloud: a store directory in this process, or a medvault-server (connect).
class cloud {
 public:
  explicit cloud(const std::string &dir)
      : p_(make<medvault_cloud, medvault_cloud_free>(
            [&](medvault_cloud **out) { return medvault_cloud_open(dir.c_str(), out); })) {}
  // Logs in to the medvault-server at url as account, trusting only the certificates in
  // ca_pem; every member below then works over HTTPS, as the account may.
  static cloud connect(const std::string &url, std::string_view ca_pem, const std::string &account,
                       const std::string &password) {
    return cloud(make<medvault_cloud, medvault_cloud_free>([&](medvault_cloud **out) {
      return medvault_cloud_connect(url.c_str(), bytes_of(ca_pem).data(), ca_pem.size(),
                                    account.c_str(), password.c_str(), out);
    }));
  }
  void put_record(byte_span sealed) {
    check(medvault_cloud_put_record(p_.get(), sealed.data(), sealed.size(), nullptr));
  }
  // One provider's records in one commit, all or none (medvault_cloud_put_records).
  void put_records(const std::vector<std::vector<std::uint8_t>> &sealed) {
    std::vector<const std::uint8_t *> data;
    std::vector<std::size_t> lens;
    for (const auto &record : sealed) {
      data.push_back(record.data());
      lens.push_back(record.size());
    }
    check(medvault_cloud_put_records(p_.get(), data.data(), lens.data(), sealed.size(), nullptr));
  }
  std::uint64_t put_record_file(const std::string &path) {
    std::uint64_t size = 0;
    check(medvault_cloud_put_record_file(p_.get(), path.c_str(), nullptr, &size));
    return size;
  }
  std::vector<std::uint8_t> get_record(const std::string &provider, const record_id &id) const {
    return take_bytes([&](medvault_bytes *out) {
      return medvault_cloud_get_record(p_.get(), provider.c_str(), id.data(), out);
    });
  }
  void ingest(byte_span batch) { check(medvault_cloud_ingest(p_.get(), batch.data(), batch.size())); }
  std::uint32_t next_epoch(const std::string &provider) const {
    std::uint32_t epoch = 0;
    check(medvault_cloud_next_epoch(p_.get(), provider.c_str(), &epoch));
    return epoch;
  }
  void merge() { check(medvault_cloud_merge(p_.get())); }
  std::vector<std::uint8_t> manifest() const {
    return take_bytes([&](medvault_bytes *out) { return medvault_cloud_manifest(p_.get(), out); });
  }
  std::vector<std::uint8_t> search(byte_span query) const {
    return take_bytes([&](medvault_bytes *out) {
      return medvault_cloud_search(p_.get(), query.data(), query.size(), out);
    });
  }
  void register_provider(const std::string &provider, const public_identity &keys) {
    check(medvault_cloud_register_provider(p_.get(), provider.c_str(), keys.get()));
  }
  public_identity provider_keys(const std::string &provider) const {
    medvault_public_identity *raw = nullptr;
    check(medvault_cloud_provider_keys(p_.get(), provider.c_str(), &raw));
    return public_identity(raw);
  }
  record_id submit_request(byte_span request) {
    record_id id{};
    check(medvault_cloud_submit_request(p_.get(), request.data(), request.size(), id.data()));
    return id;
  }
  void decide_request(const record_id &id, bool approve) {
    check(medvault_cloud_decide_request(p_.get(), id.data(), approve));
  }
  std::vector<std::vector<std::uint8_t>> approved_requests(const std::string &provider) const {
    medvault_list *raw = nullptr;
    check(medvault_cloud_approved_requests(p_.get(), provider.c_str(), &raw));
    return take_list(raw);
  }
  void post_grant(byte_span grant) {
    check(medvault_cloud_post_grant(p_.get(), grant.data(), grant.size()));
  }
  std::vector<std::vector<std::uint8_t>> fetch_grants(const public_identity &recipient) const {
    medvault_list *raw = nullptr;
    check(medvault_cloud_fetch_grants(p_.get(), recipient.get(), &raw));
    return take_list(raw);
  }
  std::size_t request_count_for_admin() const {
    auto view = make<medvault_admin_view, medvault_admin_view_free>(
        [&](medvault_admin_view **out) { return medvault_cloud_admin_view(p_.get(), out); });
    return medvault_admin_view_request_count(view.get());
  }

 private:
  explicit cloud(handle<medvault_cloud, medvault_cloud_free> p) : p_(std::move(p)) {}
  handle<medvault_cloud, medvault_cloud_free> p_;
};

// Creates a provider account (its name is the provider id) on a medvault-server.
inline void register_provider_account(const std::string &url, std::string_view ca_pem,
                                      const std::string &provider, const std::string &password) {
  check(medvault_account_register(url.c_str(), bytes_of(ca_pem).data(), ca_pem.size(),
                                  provider.c_str(), password.c_str(), MEDVAULT_ROLE_PROVIDER,
                                  nullptr));
}

// Creates a requester account whose grant mailbox is that of keys.
inline void register_requester_account(const std::string &url, std::string_view ca_pem,
                                       const std::string &account, const std::string &password,
                                       const public_identity &keys) {
  check(medvault_account_register(url.c_str(), bytes_of(ca_pem).data(), ca_pem.size(),
                                  account.c_str(), password.c_str(), MEDVAULT_ROLE_REQUESTER,
                                  keys.get()));
}

using opened_request = handle<medvault_opened_request, medvault_opened_request_free>;

inline opened_request open_request(byte_span request, const identity &provider_identity) {
  return make<medvault_opened_request, medvault_opened_request_free>(
      [&](medvault_opened_request **out) {
        return medvault_access_request_open(request.data(), request.size(), provider_identity.get(),
                                            out);
      });
}

using pending_request = handle<medvault_pending_request, medvault_pending_request_free>;

// An access request: the bytes to submit, and what to keep to accept the grant.
struct access_request {
  std::vector<std::uint8_t> bytes;
  pending_request pending;
};

inline access_request request_patient(const identity &requester, const std::string &name,
                                      const std::string &provider, const public_identity &keys,
                                      std::string_view patient, const std::string &reason,
                                      std::uint64_t now) {
  medvault_pending_request *pending = nullptr;
  auto bytes = take_bytes([&](medvault_bytes *out) {
    return medvault_access_request_create(requester.get(), name.c_str(), provider.c_str(),
                                          keys.get(), MEDVAULT_SCOPE_KIND_PATIENT,
                                          bytes_of(patient).data(), patient.size(), nullptr,
                                          reason.c_str(), now, out, &pending);
  });
  return {std::move(bytes), pending_request(pending)};
}

// One decrypted record of a search result.
struct found_record {
  std::string provider;
  record_id id;
  std::vector<std::uint8_t> plaintext;
};

class requester {
 public:
  requester()
      : p_(make<medvault_requester, medvault_requester_free>(
            [](medvault_requester **out) { return medvault_requester_new(out); })) {}
  // Pins `keys` for `provider`: its signed log is verified under them before a query.
  void trust_provider(const std::string &provider, const public_identity &keys) {
    check(medvault_requester_trust_provider(p_.get(), provider.c_str(), keys.get()));
  }
  void accept_grant(byte_span grant, const pending_request &pending, const public_identity &issuer,
                    const identity &me, std::uint64_t now) {
    check(medvault_requester_accept_grant(p_.get(), grant.data(), grant.size(), pending.get(),
                                          issuer.get(), me.get(), now));
  }
  // Builds the query, has `the_cloud` answer it, checks and opens the answer. With
  // `providers`, only those are asked (medvault_requester_query_at); otherwise every
  // provider the requester holds keys for.
  std::vector<found_record> search(cloud &the_cloud, std::string_view patient,
                                   const std::vector<std::string> &keywords,
                                   medvault_combine combine,
                                   const std::vector<std::string> &providers = {}) const {
    auto manifest = the_cloud.manifest();
    auto words = c_strings(keywords);
    auto asked = c_strings(providers);
    auto prepared = make<medvault_prepared_query, medvault_prepared_query_free>(
        [&](medvault_prepared_query **out) {
          if (asked.empty()) {
            return medvault_requester_query(p_.get(), bytes_of(patient).data(), patient.size(),
                                            words.data(), words.size(), combine,
                                            manifest.data(), manifest.size(), out);
          }
          return medvault_requester_query_at(p_.get(), bytes_of(patient).data(), patient.size(),
                                             words.data(), words.size(), combine,
                                             manifest.data(), manifest.size(), asked.data(),
                                             asked.size(), out);
        });
    auto query = take_bytes(
        [&](medvault_bytes *out) { return medvault_prepared_query_bytes(prepared.get(), out); });
    auto response = the_cloud.search(query);
    auto results = make<medvault_search_results, medvault_search_results_free>(
        [&](medvault_search_results **out) {
          return medvault_requester_open_response(p_.get(), prepared.get(), response.data(),
                                                  response.size(), out);
        });
    std::vector<found_record> found;
    for (std::size_t p = 0; p < medvault_search_results_provider_count(results.get()); p++) {
      medvault_provider_results provider{};
      check(medvault_search_results_provider(results.get(), p, &provider));
      for (std::size_t r = 0; r < provider.record_count; r++) {
        medvault_opened_record record{};
        check(medvault_search_results_record(results.get(), p, r, &record));
        found_record f{provider.provider_id, {}, {record.plaintext, record.plaintext + record.plaintext_len}};
        std::copy(std::begin(record.record_id), std::end(record.record_id), f.id.begin());
        found.push_back(std::move(f));
      }
    }
    return found;
  }
  std::vector<std::uint8_t> open_record(std::string_view patient, byte_span sealed) const {
    return take_bytes([&](medvault_bytes *out) {
      return medvault_requester_open_record(p_.get(), bytes_of(patient).data(), patient.size(),
                                            sealed.data(), sealed.size(), out);
    });
  }

 private:
  handle<medvault_requester, medvault_requester_free> p_;
};

}  // namespace medvault

#endif  // MEDVAULT_HPP
