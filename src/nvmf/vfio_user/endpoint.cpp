#include "nvmf/vfio_user/endpoint.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/log.h"
#include "nvme/registers.h"
#include "nvmf/controller.h"

namespace nvemu::vfio_user {

namespace {

pid_t peer_pid(int fd) {
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return 0;
  return cred.pid;
}

}  // namespace

Endpoint::Endpoint(Reactor& reactor, const nvmf::TransportOpts& opts)
    : reactor_(reactor), opts_(opts), queues_(reactor, irqs_) {
  if (opts.specific.is_object() && opts.specific.contains("idle_poll_us") &&
      opts.specific["idle_poll_us"].is_number_unsigned())
    idle_poll_us_ = std::clamp<uint32_t>(opts.specific["idle_poll_us"].get<uint32_t>(), 10, 100000);
}

Endpoint::~Endpoint() {
  if (doorbells_) munmap(doorbells_, kDoorbellSize);
}

std::shared_ptr<Endpoint> Endpoint::create(const std::string& dir,
                                           std::shared_ptr<nvmf::Subsystem> subsys,
                                           Reactor& reactor, const nvmf::TransportOpts& opts,
                                           std::string* error) {
  std::shared_ptr<Endpoint> ep(new Endpoint(reactor, opts));
  if (!ep->init(dir, std::move(subsys), error)) return nullptr;
  std::weak_ptr<Endpoint> weak = ep;
  auto start = [weak] {
    if (auto self = weak.lock()) self->start();
  };
  if (reactor.on_thread())
    start();
  else
    reactor.send(start);
  return ep;
}

bool Endpoint::init(const std::string& dir, std::shared_ptr<nvmf::Subsystem> subsys,
                    std::string* error) {
  dir_ = dir;
  path_ = dir + "/cntrl";
  subnqn_ = subsys->nqn();
  struct sockaddr_un sa {};
  sa.sun_family = AF_UNIX;
  if (dir.empty() || path_.size() >= sizeof sa.sun_path) {
    *error = fmt::format("vfio-user traddr '{}': the socket path {} must be 1..{} bytes", dir,
                         path_, sizeof sa.sun_path - 1);
    return false;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir)) {
    *error = fmt::format("vfio-user traddr '{}' is not a directory nvemu can create or use: {}",
                         dir, ec ? ec.message() : "exists as a non-directory");
    return false;
  }
  std::memcpy(sa.sun_path, path_.c_str(), path_.size() + 1);
  // A live socket (someone accepts on it) is refused; a stale file replaced.
  struct stat st {};
  if (lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      *error =
          fmt::format("{} exists and is not a socket; remove it or choose another traddr", path_);
      return false;
    }
    UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && connect(probe.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
      *error = fmt::format(
          "vfio-user socket {} is in use by a live server; stop it or choose another traddr",
          path_);
      return false;
    }
    unlink(path_.c_str());
  }
  listen_fd_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listen_fd_ || bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      listen(listen_fd_.get(), 4) != 0) {
    *error = fmt::format("vfio-user socket {}: {}", path_, strerror(errno));
    return false;
  }
  // BAR0 backing: a memfd whose doorbell page the client mmaps.
  doorbell_fd_.reset(memfd_create("nvemu-vfio-user-bar0", MFD_CLOEXEC));
  if (!doorbell_fd_ || ftruncate(doorbell_fd_.get(), kBar0Size) != 0) {
    *error = fmt::format("vfio-user {}: memfd for the doorbells: {}", path_, strerror(errno));
    return false;
  }
  void* p = mmap(nullptr, kDoorbellSize, PROT_READ | PROT_WRITE, MAP_SHARED, doorbell_fd_.get(),
                 kDoorbellOffset);
  if (p == MAP_FAILED) {
    *error = fmt::format("vfio-user {}: mmap of the doorbell page: {}", path_, strerror(errno));
    return false;
  }
  doorbells_ = static_cast<uint32_t*>(p);
  queues_.set_doorbells(doorbells_);
  queues_.set_dma(&dma_);
  ctrlr_ = nvmf::Controller::create_pcie(subsys, &queues_, reactor_, opts_);
  if (!ctrlr_) {
    *error = fmt::format("subsystem {} has no free controller ID for the vfio-user function {}",
                         subnqn_, path_);
    unlink(path_.c_str());
    return false;
  }
  queues_.set_controller(ctrlr_.get());
  LOG_NOTICE("vfio_user", "vfio-user function {} for {} (controller {}) listening", path_, subnqn_,
             ctrlr_->cntlid());
  return true;
}

void Endpoint::start() {
  std::weak_ptr<Endpoint> weak = weak_from_this();
  queues_.set_drop_host([weak] {
    if (auto self = weak.lock()) self->drop_client("dropped by fault injection (drop_connection)");
  });
  reactor_.add_fd(listen_fd_.get(), EPOLLIN, [this](uint32_t) { on_accept(); });
  poller_ = reactor_.add_poller([this] { return poll(); });
}

int Endpoint::poll() {
  int work = queues_.poll();
  if (!queues_.empty()) reactor_.limit_sleep_us(idle_poll_us_);
  if (destroying_) finish_destroy_if_drained();
  return work;
}

void Endpoint::on_accept() {
  int fd = accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return;
  if (client_fd_ || destroying_) {
    stats_.rejected_clients++;
    LOG_WARN("vfio_user",
             "{}: refusing a client (pid {}): the function is held by pid {}; one client at a "
             "time — stop the other VM/initiator first",
             path_, peer_pid(fd), client_pid_);
    close(fd);
    return;
  }
  attach_client(fd);
}

void Endpoint::attach_client(int fd) {
  client_fd_.reset(fd);
  client_pid_ = peer_pid(fd);
  reader_ = MsgReader();
  negotiated_ = false;
  stats_.clients++;
  LOG_NOTICE("vfio_user", "{}: client attached (pid {})", path_, client_pid_);
  reactor_.add_fd(fd, EPOLLIN | EPOLLRDHUP, [this](uint32_t ev) { on_client_event(ev); });
}

void Endpoint::on_client_event(uint32_t events) {
  (void)events;
  // Bounded per wake-up so one chatty client cannot starve the reactor.
  for (int i = 0; i < 64 && client_fd_; ++i) {
    Message m;
    std::string why;
    switch (reader_.read(client_fd_.get(), &m, &why)) {
      case MsgReader::Result::kAgain:
        return;
      case MsgReader::Result::kClosed:
        drop_client("the client closed the socket");
        return;
      case MsgReader::Result::kError:
        drop_client(why);
        return;
      case MsgReader::Result::kMessage:
        handle_message(m);
        break;
    }
  }
}

void Endpoint::drop_client(const std::string& why) {
  if (!client_fd_) return;
  LOG_NOTICE("vfio_user", "{}: client (pid {}) detached: {}", path_, client_pid_, why);
  reactor_.remove_fd(client_fd_.get());
  client_fd_.reset();
  client_pid_ = 0;
  // The host is gone: reset the controller (drops every queue), forget its
  // memory and interrupts, and present a fresh function to the next client.
  if (ctrlr_ && ctrlr_->read_register(nvme::reg::kCc, 4) != 0)
    ctrlr_->write_register(nvme::reg::kCc, 0, 4);
  queues_.delete_all();
  dma_.unmap_all();
  irqs_.reset();
  config_.reset();
  std::memset(doorbells_, 0, kDoorbellSize);
  negotiated_ = false;
}

void Endpoint::device_reset() {
  LOG_INFO("vfio_user", "{}: device reset", path_);
  if (ctrlr_ && ctrlr_->read_register(nvme::reg::kCc, 4) != 0)
    ctrlr_->write_register(nvme::reg::kCc, 0, 4);
  queues_.delete_all();
  std::memset(doorbells_, 0, kDoorbellSize);
  // Function-level reset of what the device owns; BAR addresses are kept
  // because QEMU virtualises them and does not re-program ours.
  uint16_t zero = 0;
  config_.write(cfg::kCommand, &zero, 2);
  config_.write(cfg::kMsixCap + 2, &zero, 2);
}

void Endpoint::destroy(std::function<void()> done) {
  auto self = shared_from_this();
  auto run = [self, done = std::move(done)]() mutable {
    if (self->destroying_) return;
    self->destroying_ = true;
    self->on_destroyed_ = std::move(done);
    self->self_ = self;
    if (self->poller_ == 0) self->start();  // never started: still reap below
    self->drop_client("the function is being removed");
    self->irqs_.request_release();
    self->reactor_.remove_fd(self->listen_fd_.get());
    self->listen_fd_.reset();
    unlink(self->path_.c_str());
    self->finish_destroy_if_drained();
  };
  if (reactor_.on_thread())
    run();
  else
    reactor_.send(std::move(run));
}

void Endpoint::finish_destroy_if_drained() {
  if (!queues_.drained() || finishing_) return;  // the poller keeps reaping
  finishing_ = true;
  // Not from inside the poller: removing it would free the running closure.
  reactor_.send([this] { finish_destroy(); });
}

void Endpoint::finish_destroy() {
  reactor_.remove_poller(poller_);
  LOG_NOTICE("vfio_user", "vfio-user function {} removed", path_);
  queues_.set_controller(nullptr);
  ctrlr_.reset();
  auto done = std::move(on_destroyed_);
  auto keep = std::move(self_);
  if (done) done();
}

bool Endpoint::controller_ready() const {
  if (!ctrlr_) return false;
  auto csts = static_cast<uint32_t>(ctrlr_->read_register(nvme::reg::kCsts, 4));
  return (csts & nvme::csts::kRdy) && !(csts & nvme::csts::kShstMask);
}

nlohmann::json Endpoint::info_json() const {
  const QueueStats& q = queues_.stats();
  return {{"traddr", dir_},
          {"socket", path_},
          {"subnqn", subnqn_},
          {"cntlid", ctrlr_ ? ctrlr_->cntlid() : 0},
          {"client_pid", client_pid_},
          {"client_attached", static_cast<bool>(client_fd_)},
          // The host driver has the controller enabled: CSTS.RDY=1 and no
          // shutdown (CSTS.SHST=0). A driver that lets go (Linux unbind,
          // guest power-off) shuts it down but leaves CC.EN/RDY set.
          {"controller_ready", controller_ready()},
          {"dma_regions", dma_.count()},
          {"clients", stats_.clients},
          {"rejected_clients", stats_.rejected_clients},
          {"messages", stats_.messages},
          {"message_errors", stats_.errors},
          {"submitted", q.submitted},
          {"completed", q.completed},
          {"cq_overflows", q.cq_overflows},
          {"irqs", q.irqs},
          {"invalid_doorbells", q.invalid_doorbells}};
}

}  // namespace nvemu::vfio_user
