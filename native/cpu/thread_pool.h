// A fixed set of threads that run numbered tasks; the calling thread takes part. The first
// exception a task throws is rethrown to the caller once every task has finished.
#pragma once
#include <atomic>
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
      busy_ = size_ - 1;
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    work(0);
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return busy_ == 0; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void stop_and_join() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
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

  void loop(int worker) {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      work(worker);
      {
        std::lock_guard<std::mutex> lock(mu_);
        --busy_;
      }
      done_.notify_one();
    }
  }

  int size_;
  std::vector<std::thread> threads_;
  std::mutex mu_, run_mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t, int)>* job_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_{0};
  int busy_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace ncsn
