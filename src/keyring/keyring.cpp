// Keyring: file-backed keys, checked the way SPDK's keyring_file module
// checks them (absolute path, not readable by group or others, owned by the
// daemon's user), read through one descriptor so the checks and the read
// concern the same file.
#include "keyring/keyring.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nvemu::keyring {

namespace {

// Reads at most 4 KiB: a secret is ~100 bytes; anything larger is not one.
std::string read_key_file(const std::string& path, std::string* text, int* err_no) {
  if (path.empty() || path[0] != '/') {
    *err_no = EPERM;
    return fmt::format("key file path '{}' is not absolute; give the full path", path);
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    *err_no = errno;
    return fmt::format("cannot open key file '{}': {} (the daemon opens it as uid {})", path,
                       std::strerror(errno), geteuid());
  }
  struct stat st {};
  std::string why;
  if (fstat(fd, &st) != 0) {
    *err_no = errno;
    why = fmt::format("cannot stat key file '{}': {}", path, std::strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    *err_no = EINVAL;
    why = fmt::format("key file '{}' is not a regular file", path);
  } else if (st.st_mode & 077) {
    *err_no = EPERM;
    why = fmt::format(
        "key file '{}' has mode 0{:o}: others than its owner may read it; "
        "run chmod 0600 {}",
        path, st.st_mode & 0777, path);
  } else if (st.st_uid != geteuid()) {
    *err_no = EPERM;
    why = fmt::format(
        "key file '{}' is owned by uid {}, not by the daemon's uid {}; "
        "chown it to the user running nvemu-tgt",
        path, st.st_uid, geteuid());
  } else {
    char buf[4097];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      *err_no = errno;
      why = fmt::format("cannot read key file '{}': {}", path, std::strerror(errno));
    } else if (n == static_cast<ssize_t>(sizeof buf)) {
      *err_no = EINVAL;
      why = fmt::format("key file '{}' is larger than 4 KiB; it should hold one secret", path);
    } else {
      text->assign(buf, static_cast<size_t>(n));
    }
    explicit_bzero(buf, sizeof buf);
  }
  ::close(fd);
  return why;
}

// SPDK 24.x keyring_dump_key_info: the module's fields (path) only while the
// key is listed.
nlohmann::json entry_json(const Key& k, bool removed, long refs) {
  nlohmann::json j{{"name", k.name},
                   {"module", "keyring_file"},
                   {"removed", removed},
                   {"probed", false},
                   {"refcnt", refs}};
  if (!removed) j["path"] = k.path;
  return j;
}

}  // namespace

Keyring& Keyring::instance() {
  static Keyring k;
  return k;
}

std::string Keyring::add_file_key(const std::string& name, const std::string& path, int* err_no) {
  if (name.empty()) {
    *err_no = EINVAL;
    return "a key needs a non-empty name";
  }
  if (find(name)) {
    *err_no = EEXIST;
    return fmt::format("key '{}' already exists; remove it with keyring_file_remove_key first",
                       name);
  }
  std::string text;
  std::string why = read_key_file(path, &text, err_no);
  if (!why.empty()) return why;
  auto key = std::make_shared<Key>();
  key->name = name;
  key->path = path;
  std::string bad = auth::parse_secret(text, &key->secret);
  explicit_bzero(text.data(), text.size());
  if (!bad.empty()) {
    *err_no = EINVAL;
    return fmt::format("key file '{}' does not hold a DH-HMAC-CHAP secret: {}", path, bad);
  }
  std::lock_guard lk(mu_);
  for (const auto& k : keys_) {
    if (k->name == name) {
      *err_no = EEXIST;
      return fmt::format("key '{}' already exists", name);
    }
  }
  keys_.push_back(std::move(key));
  return "";
}

bool Keyring::remove(const std::string& name) {
  std::lock_guard lk(mu_);
  for (auto it = keys_.begin(); it != keys_.end(); ++it) {
    if ((*it)->name != name) continue;
    if (it->use_count() > 1) removed_.push_back(*it);
    keys_.erase(it);
    return true;
  }
  return false;
}

std::shared_ptr<const Key> Keyring::find(const std::string& name) const {
  std::lock_guard lk(mu_);
  for (const auto& k : keys_)
    if (k->name == name) return k;
  return nullptr;
}

nlohmann::json Keyring::keys_json() const {
  std::lock_guard lk(mu_);
  auto out = nlohmann::json::array();
  // SPDK's refcnt: the keyring's own reference (a listed key) plus one per
  // user; a removed key has only its users'.
  for (const auto& k : keys_) out.push_back(entry_json(*k, false, k.use_count()));
  for (const auto& w : removed_)
    if (auto k = w.lock()) out.push_back(entry_json(*k, true, k.use_count() - 1));
  return out;
}

nlohmann::json Keyring::config_json() const {
  std::lock_guard lk(mu_);
  auto out = nlohmann::json::array();
  for (const auto& k : keys_)
    out.push_back(
        {{"method", "keyring_file_add_key"}, {"params", {{"name", k->name}, {"path", k->path}}}});
  return out;
}

void Keyring::clear() {
  std::lock_guard lk(mu_);
  keys_.clear();
  removed_.clear();
}

nlohmann::json config_json() {
  return {{"subsystem", "keyring"}, {"config", Keyring::instance().config_json()}};
}

}  // namespace nvemu::keyring
