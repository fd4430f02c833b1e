// The EHR example of examples/c/ehr_demo.c in C++, through include/medvault.hpp:
// RAII handles, exceptions carrying the status and message, spans and vectors.
//
//   ehr_demo [--cloud URL CA.pem ADMIN_PASSWORD_FILE] WORK_DIR IMAGE.dcm KEYS_DIR
//
// With --cloud the parties reach a fresh medvault-server, each with its own account.
#include <cstdio>
#include <ctime>
#include <deque>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "medvault.hpp"

namespace {

const std::string kHospital = "st-mary-hospital";
const std::string kPatient = "+15550100";

std::vector<std::uint8_t> read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string read_text(const std::string &path) {
  auto bytes = read_file(path);
  return {bytes.begin(), bytes.end()};
}

medvault::identity load_identity(const std::string &keys, const std::string &who) {
  return medvault::identity::from_pem(read_text(keys + "/" + who + "-sign.pem"),
                                      read_text(keys + "/" + who + "-enc.pem"));
}

std::string text_of(const std::vector<std::uint8_t> &bytes) { return {bytes.begin(), bytes.end()}; }

// A fresh random password for an account the demo registers.
std::string random_password() {
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  std::uint8_t random[16];
  if (!urandom.read(reinterpret_cast<char *>(random), sizeof random)) {
    throw std::runtime_error("cannot read /dev/urandom");
  }
  std::string hex;
  for (auto b : random) hex += "0123456789abcdef"[b >> 4], hex += "0123456789abcdef"[b & 15];
  return hex;
}

// Where the parties reach the cloud: one store in this process that all share, or a
// medvault-server where each has an account. Only how a party gets its handle differs.
class clouds {
 public:
  explicit clouds(const std::string &store) { local_.emplace_back(store); }
  clouds(std::string url, std::string ca, std::string admin_password)
      : url_(std::move(url)), ca_(std::move(ca)), admin_password_(std::move(admin_password)) {}

  medvault::cloud &admin() {
    if (!url_.empty()) return keep(medvault::cloud::connect(url_, ca_, "admin", admin_password_));
    return local_.front();
  }
  medvault::cloud &provider(const std::string &provider_id) {
    if (url_.empty()) return local_.front();
    auto password = random_password();
    medvault::register_provider_account(url_, ca_, provider_id, password);
    return keep(medvault::cloud::connect(url_, ca_, provider_id, password));
  }
  medvault::cloud &requester(const std::string &account, const medvault::public_identity &keys) {
    if (url_.empty()) return local_.front();
    auto password = random_password();
    medvault::register_requester_account(url_, ca_, account, password, keys);
    return keep(medvault::cloud::connect(url_, ca_, account, password));
  }

 private:
  medvault::cloud &keep(medvault::cloud cloud) {
    local_.push_back(std::move(cloud));
    return local_.back();
  }
  std::string url_, ca_, admin_password_;
  std::deque<medvault::cloud> local_;  // stable references
};

}  // namespace

int main(int argc, char **argv) {
  int arg = 1;
  std::string url, ca, admin_password;
  if (argc > 4 && std::string(argv[1]) == "--cloud") {
    url = argv[2];
    ca = read_text(argv[3]);
    admin_password = read_text(argv[4]);
    admin_password.erase(admin_password.find_last_not_of("\r\n") + 1);
    arg = 5;
  }
  if (argc - arg < 3) {
    std::cerr << "usage: " << argv[0]
              << " [--cloud URL CA.pem ADMIN_PASSWORD_FILE] WORK_DIR IMAGE.dcm KEYS_DIR\n";
    return 2;
  }
  const std::string work = argv[arg], image_path = argv[arg + 1], keys = argv[arg + 2];
  const auto now = static_cast<std::uint64_t>(std::time(nullptr));
  try {
    auto parties = url.empty() ? clouds(work + "/cloud") : clouds(url, ca, admin_password);
    auto &admin_cloud = parties.admin();

    // medvault's parallel work on the calling thread only: this demo is small.
    medvault::set_threads(1);
    // The hospital seals and indexes three notes and a DICOM image.
    auto master = medvault::master_key::generate();
    auto hospital_identity = load_identity(keys, "provider-a");
    medvault::provider hospital(kHospital, master, hospital_identity);
    auto &cloud = parties.provider(kHospital);
    cloud.register_provider(kHospital, hospital_identity.public_keys());
    struct note {
      std::string text;
      std::vector<std::string> keywords;
    };
    const std::vector<note> notes = {
        {"2026-10-01 Endocrinology: type 2 diabetes, HbA1c 8.1 %. Start metformin 500 mg.",
         {"diabetes", "metformin", "endocrinology"}},
        {"2026-10-15 Lab: fasting glucose 162 mg/dL.", {"diabetes", "glucose"}},
        {"2026-11-02 Cardiology: hypertension; lisinopril 10 mg daily.",
         {"hypertension", "lisinopril"}},
    };
    std::vector<medvault::sealed_record> sealed_notes;
    for (const auto &n : notes) {
      sealed_notes.push_back(hospital.add_record(kPatient, medvault::bytes_of(n.text), n.keywords));
    }
    auto image = read_file(image_path);
    medvault::record_id image_id{};
    {
      auto sealer = hospital.start_record(kPatient, image_id);
      std::ofstream sealed(work + "/image.sealed", std::ios::binary);
      for (std::size_t at = 0; at < image.size(); at += 65536) {
        auto piece = medvault::byte_span(image).subspan(at, std::min<std::size_t>(65536, image.size() - at));
        auto out = sealer.update(piece);
        sealed.write(reinterpret_cast<const char *>(out.data()), static_cast<std::streamsize>(out.size()));
      }
      auto last = sealer.finish();
      sealed.write(reinterpret_cast<const char *>(last.data()), static_cast<std::streamsize>(last.size()));
    }
    hospital.commit_record_file(image_id, work + "/image.sealed");
    hospital.index(kPatient, image_id, {"radiology", "dicom"});
    // The signed batch commits the records' digests: it goes first, then the records.
    auto batch = hospital.finish_batch_at(cloud.next_epoch(kHospital));
    cloud.ingest(batch);
    std::cout << "hospital: 3 notes and 1 image sealed; signed index batch of " << batch.size()
              << " bytes ingested\n";
    // The notes in one request and one commit; the image streamed on its own.
    std::vector<std::vector<std::uint8_t>> sealed_bytes;
    for (const auto &record : sealed_notes) sealed_bytes.push_back(record.bytes);
    cloud.put_records(sealed_bytes);
    auto size = cloud.put_record_file(work + "/image.sealed");
    std::cout << "hospital: uploaded the notes and the sealed DICOM image (" << size << " bytes)\n";
    auto follow_up = hospital.add_record(
        kPatient,
        medvault::bytes_of("2026-11-20 Follow-up: diabetes controlled on metformin 1000 mg."),
        {"diabetes", "metformin"});
    cloud.ingest(hospital.finish_batch_at(cloud.next_epoch(kHospital)));
    cloud.put_record(follow_up.bytes);
    admin_cloud.merge();
    std::cout << "cloud: ingested 2 batches and merged them, without any key\n";

    // The doctor asks, the admin approves, the hospital grants.
    auto doctor = load_identity(keys, "doctor");
    auto &doctor_cloud = parties.requester("dr-ada-okafor", doctor.public_keys());
    auto pinned = doctor_cloud.provider_keys(kHospital);
    auto request = medvault::request_patient(doctor, "Dr. Ada Okafor", kHospital, pinned, kPatient,
                                             "diabetes follow-up", now);
    auto request_id = doctor_cloud.submit_request(request.bytes);
    std::cout << "admin: request from Dr. Ada Okafor to " << kHospital << " ("
              << admin_cloud.request_count_for_admin() << " pending)\n";
    admin_cloud.decide_request(request_id, true);
    for (const auto &bytes : cloud.approved_requests(kHospital)) {
      auto opened = medvault::open_request(bytes, hospital_identity);
      medvault_opened_request_info info{};
      medvault::check(medvault_opened_request_get_info(opened.get(), &info));
      std::cout << "hospital: " << info.requester_name << " asks for patient "
                << std::string(reinterpret_cast<const char *>(info.patient), info.patient_len)
                << "; granting for 30 days\n";
      cloud.post_grant(hospital.grant(hospital_identity, opened.get(), now, 30 * 86400));
    }
    medvault::requester requester;
    auto grants = doctor_cloud.fetch_grants(doctor.public_keys());
    for (const auto &grant : grants) requester.accept_grant(grant, request.pending, pinned, doctor, now);
    std::cout << "doctor: accepted " << grants.size() << " grant(s)\n";

    // One query across the providers; then the image.
    auto found = requester.search(doctor_cloud, kPatient, {"diabetes", "metformin"}, MEDVAULT_COMBINE_AND);
    for (const auto &record : found) {
      std::cout << "doctor: " << record.provider << ": " << text_of(record.plaintext) << "\n";
    }
    std::cout << "doctor: diabetes AND metformin found " << found.size() << " records\n";
    // The same query asked of the hospital alone: a provider left out gets no token.
    auto at_hospital =
        requester.search(doctor_cloud, kPatient, {"diabetes", "metformin"}, MEDVAULT_COMBINE_AND, {kHospital});
    std::cout << "doctor: asking " << kHospital << " only found " << at_hospital.size() << " records\n";
    auto sealed_scan = doctor_cloud.get_record(kHospital, image_id);
    auto scan = requester.open_record(kPatient, sealed_scan);
    bool identical = scan == image;
    std::cout << "doctor: opened the " << scan.size() << "-byte image, "
              << (identical ? "identical to the original" : "DIFFERENT FROM THE ORIGINAL") << "\n";
    auto key = hospital.key_of(kPatient);
    medvault::opener opener(key.get());
    std::vector<std::uint8_t> streamed;
    for (std::size_t at = 0; at < sealed_scan.size(); at += 5000) {
      auto piece = medvault::byte_span(sealed_scan).subspan(at, std::min<std::size_t>(5000, sealed_scan.size() - at));
      auto plain = opener.update(piece);
      streamed.insert(streamed.end(), plain.begin(), plain.end());
    }
    auto last = opener.finish();
    streamed.insert(streamed.end(), last.begin(), last.end());
    bool stream_ok = streamed == image;
    std::cout << "hospital: streamed the image back in 5000-byte pieces: " << streamed.size()
              << " bytes, " << (stream_ok ? "identical" : "DIFFERENT") << "\n";

    // A tampered record is an exception carrying the status.
    sealed_scan[sealed_scan.size() / 2] ^= 1;
    try {
      requester.open_record(kPatient, sealed_scan);
      std::cerr << "error: a tampered image opened\n";
      return 1;
    } catch (const medvault::error &e) {
      std::cout << "doctor: a tampered image is refused (status " << e.status() << ")\n";
    }
    if (found.size() != 2 || at_hospital.size() != 2 || !identical || !stream_ok) {
      std::cerr << "error: unexpected results\n";
      return 1;
    }
    std::cout << "done\n";
    return 0;
  } catch (const medvault::error &e) {
    std::cerr << "error: " << e.what() << " (status " << e.status() << ")\n";
    return 1;
  }
}
