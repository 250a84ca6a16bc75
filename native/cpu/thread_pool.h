// A fixed set of threads that run numbered tasks; the calling thread takes part. The first
// exception a task throws is rethrown to the caller once every task has finished.
// Between jobs a thread polls for the next one a short while before it sleeps: a training step
// runs several jobs a few microseconds apart, and waking a sleeping thread through the kernel took
// longer than that.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace ncsn {

class ThreadPool {
 public:
  // How the pool starts a thread; the tests pass one that fails part-way.
  using Spawn = std::function<std::thread(std::function<void()>)>;
  static std::thread spawn_thread(std::function<void()> body) { return std::thread(std::move(body)); }

  // When a thread cannot be started, those already running are stopped and joined before the
  // constructor throws, since no destructor runs for a pool that was never made.
  explicit ThreadPool(int threads, const Spawn& spawn = spawn_thread) : size_(threads < 1 ? 1 : threads) {
    for (int w = 1; w < size_; ++w) {
      try {
        threads_.push_back(spawn([this, w] { loop(w); }));
      } catch (const std::exception& e) {
        stop_and_join();
        throw std::runtime_error("could not start CPU worker thread " + std::to_string(w) + " of " +
                                 std::to_string(size_ - 1) + " (" + e.what() + ")");
      }
    }
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() { stop_and_join(); }

  int size() const { return size_; }

  // Runs fn(task, worker) for task in [0, n); worker is in [0, size()).
  void run(int64_t n, const std::function<void(int64_t, int)>& fn) {
    if (n <= 0) return;
    if (size_ == 1 || n == 1) {
      for (int64_t i = 0; i < n; ++i) fn(i, 0);
      return;
    }
    std::unique_lock<std::mutex> run_lock(run_mu_);  // one job at a time per pool
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &fn;
      n_tasks_ = n;
      next_.store(0);
      busy_.store(size_ - 1);
      error_ = nullptr;
      generation_.store(generation_.load() + 1, std::memory_order_release);
    }
    wake_.notify_all();
    work(0);
    if (!poll_until([this] { return busy_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lock(mu_);
      done_.wait(lock, [this] { return busy_.load() == 0; });
    }
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void stop_and_join() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_.store(true);
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }

  void work(int worker) {
    for (;;) {
      const int64_t i = next_.fetch_add(1);
      if (i >= n_tasks_) return;
      try {
        (*job_)(i, worker);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
        next_.store(n_tasks_);
      }
    }
  }

  // Polls `ready` for up to kPoll; whether it became true. Each poll yields the core, so that a
  // thread that has work (of this pool or another process) runs first: where there are more
  // threads than cores, a spin that held its core cost two trainings at once a quarter of their
  // speed.
  template <typename Ready>
  static bool poll_until(const Ready& ready) {
    const auto deadline = std::chrono::steady_clock::now() + kPoll;
    for (int i = 0;; ++i) {
      if (ready()) return true;
      if (i % 16 == 15 && std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::yield();
    }
  }

  void loop(int worker) {
    uint64_t seen = 0;
    for (;;) {
      const auto news = [&] { return stop_.load() || generation_.load(std::memory_order_acquire) != seen; };
      if (!poll_until(news)) {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, news);
      }
      if (stop_) return;
      seen = generation_.load(std::memory_order_acquire);
      work(worker);
      if (busy_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mu_);  // so that a caller about to sleep cannot miss it
        done_.notify_one();
      }
    }
  }

  int size_;
  std::vector<std::thread> threads_;
  std::mutex mu_, run_mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t, int)>* job_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> busy_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  // How long an idle thread polls before it sleeps: longer than the serial work between a training
  // step's jobs, short enough that a finished run costs little CPU.
  static constexpr std::chrono::microseconds kPoll{100};
  std::exception_ptr error_;
};

}  // namespace ncsn
