// A C ABI over PyTorch's c10d (the engine inside the PyTorch wheel): stores, Gloo and NCCL
// process groups, and the collectives the trainer needs. Compiled by train/build.rs with the `cc`
// crate against the wheel's headers; see train/src/dist.rs for the Rust side.
//
// Every call catches C++ exceptions and hands their text back through `err` (a malloc'd string
// the caller frees with tf_dist_free_string), so a backend error is a Rust error, never an abort.
// Every collective is waited on before it returns (NCCL: the caller's stream waits on c10d's).

#include <cstdlib>
#include <cstring>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace {

struct Store {
  c10::intrusive_ptr<c10d::Store> store;
  uint16_t port;
};

struct Group {
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
};

void set_err(char** err, const std::string& msg) {
  if (err != nullptr) {
    *err = strdup(msg.c_str());
  }
}

template <typename F>
int guarded(char** err, F f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    set_err(err, e.what());
  } catch (...) {
    set_err(err, "unknown C++ exception");
  }
  return -1;
}

// c10d messages carry a C++ backtrace after the first line(s) when TORCH_SHOW_CPP_STACKTRACES
// is set; keep them, the caller trims.
void wait(Group* g, const c10::intrusive_ptr<c10d::Work>& work) {
  work->wait(g->timeout);
}

}  // namespace

extern "C" {

void tf_dist_free_string(char* s) { free(s); }

// A TCPStore: the server (`is_server`, listening on `port`, 0 = any free port) or a client of
// the one at host:port. `prefix` (may be empty) wraps it in a PrefixStore.
void* tf_dist_store_tcp(const char* host, uint16_t port, bool is_server, int world,
                        int64_t timeout_ms, const char* prefix, char** err) {
  Store* out = nullptr;
  guarded(err, [&] {
    c10d::TCPStoreOptions opts;
    opts.port = port;
    opts.isServer = is_server;
    opts.numWorkers = std::nullopt;
    opts.waitWorkers = false;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    uint16_t bound = tcp->getPort();
    c10::intrusive_ptr<c10d::Store> s = tcp;
    if (prefix != nullptr && prefix[0] != '\0') {
      s = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), s);
    }
    out = new Store{s, bound};
  });
  (void)world;
  return out;
}

// The same store seen under `prefix` (another key space on the same server).
void* tf_dist_store_prefixed(void* store, const char* prefix, char** err) {
  Store* out = nullptr;
  guarded(err, [&] {
    auto* s = static_cast<Store*>(store);
    auto p = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), s->store->clone());
    out = new Store{p, s->port};
  });
  return out;
}

uint16_t tf_dist_store_port(void* store) { return static_cast<Store*>(store)->port; }

void tf_dist_store_free(void* store) { delete static_cast<Store*>(store); }

int tf_dist_store_set(void* store, const char* key, const uint8_t* value, size_t len,
                      char** err) {
  return guarded(err, [&] {
    std::vector<uint8_t> v(value, value + len);
    static_cast<Store*>(store)->store->set(std::string(key), v);
  });
}

// 1 when `key` is set, 0 when not, -1 on error.
int tf_dist_store_check(void* store, const char* key, char** err) {
  int found = 0;
  int rc = guarded(err, [&] {
    found = static_cast<Store*>(store)->store->check({std::string(key)}) ? 1 : 0;
  });
  return rc == 0 ? found : -1;
}

// Waits (up to the store's timeout) for `key`; the value is malloc'd into *out.
int tf_dist_store_get(void* store, const char* key, uint8_t** out, size_t* len, char** err) {
  return guarded(err, [&] {
    auto v = static_cast<Store*>(store)->store->get(std::string(key));
    *len = v.size();
    *out = static_cast<uint8_t*>(malloc(v.size() == 0 ? 1 : v.size()));
    if (!v.empty()) {
      memcpy(*out, v.data(), v.size());
    }
  });
}

int64_t tf_dist_store_add(void* store, const char* key, int64_t delta, char** err) {
  int64_t value = 0;
  int rc = guarded(err, [&] { value = static_cast<Store*>(store)->store->add(std::string(key), delta); });
  return rc == 0 ? value : -1;
}

// A process group over `store`: backend "gloo" (CPU tensors) or "nccl" (CUDA tensors).
void* tf_dist_group_new(void* store, const char* backend, int rank, int world,
                        int64_t timeout_ms, char** err) {
  Group* out = nullptr;
  guarded(err, [&] {
    auto s = static_cast<Store*>(store)->store;
    auto timeout = std::chrono::milliseconds(timeout_ms);
    std::string name(backend);
    if (name == "gloo") {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      if (ifname != nullptr && ifname[0] != '\0') {
        std::string list(ifname);
        size_t start = 0;
        while (start <= list.size()) {
          size_t end = list.find(',', start);
          if (end == std::string::npos) end = list.size();
          if (end > start) {
            opts->devices.push_back(
                c10d::ProcessGroupGloo::createDeviceForInterface(list.substr(start, end - start)));
          }
          start = end + 1;
        }
      } else {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      out = new Group{c10::make_intrusive<c10d::ProcessGroupGloo>(s, rank, world, opts), timeout};
    } else if (name == "nccl") {
#ifdef USE_C10D_NCCL
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      out = new Group{c10::make_intrusive<c10d::ProcessGroupNCCL>(s, rank, world, opts), timeout};
#else
      throw std::runtime_error(
          "this tinyforge was built against a PyTorch without CUDA: no NCCL backend");
#endif
    } else {
      throw std::runtime_error("unknown backend `" + name + "` (gloo, nccl)");
    }
  });
  return out;
}

void tf_dist_group_free(void* group) { delete static_cast<Group*>(group); }

// Stops the backend's communicators (NCCL: ncclCommAbort) so a failed run exits instead of
// waiting on peers that are gone.
void tf_dist_group_abort(void* group) {
  try {
    static_cast<Group*>(group)->backend->abort();
  } catch (...) {
  }
}

// In place: sum (op 0) or average (op 1) over the ranks.
int tf_dist_all_reduce(void* group, at::Tensor* t, int op, char** err) {
  return guarded(err, [&] {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> ts{*t};
    c10d::AllreduceOptions o;
    o.reduceOp = op == 1 ? c10d::ReduceOp(c10d::ReduceOp::AVG) : c10d::ReduceOp(c10d::ReduceOp::SUM);
    wait(g, g->backend->allreduce(ts, o));
  });
}

// `out` (numel = input / world) gets this rank's slice of the sum of every rank's `input`.
int tf_dist_reduce_scatter(void* group, at::Tensor* out, at::Tensor* input, char** err) {
  return guarded(err, [&] {
    auto* g = static_cast<Group*>(group);
    c10d::ReduceScatterOptions o;
    o.reduceOp = c10d::ReduceOp(c10d::ReduceOp::SUM);
    wait(g, g->backend->_reduce_scatter_base(*out, *input, o));
  });
}

// `out` (numel = input x world) gets every rank's `input`, in rank order.
int tf_dist_all_gather(void* group, at::Tensor* out, at::Tensor* input, char** err) {
  return guarded(err, [&] {
    auto* g = static_cast<Group*>(group);
    wait(g, g->backend->_allgather_base(*out, *input, c10d::AllgatherOptions()));
  });
}

int tf_dist_broadcast(void* group, at::Tensor* t, int root, char** err) {
  return guarded(err, [&] {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> ts{*t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.rootTensor = 0;
    wait(g, g->backend->broadcast(ts, o));
  });
}

int tf_dist_barrier(void* group, char** err) {
  return guarded(err, [&] {
    auto* g = static_cast<Group*>(group);
    wait(g, g->backend->barrier(c10d::BarrierOptions()));
  });
}

}  // extern "C"
