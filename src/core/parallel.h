// Threading is passed in explicitly: code that can use several threads takes a ThreadPool&.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace jetmoe {

// A persistent pool; parallel_for splits [0, n) into contiguous chunks, one per thread, and
// blocks until all are done. With one thread it runs inline. One caller at a time: two threads
// must not call parallel_for on the same pool concurrently (give each its own pool).
// Waiting threads poll for up to 50 microseconds before they sleep: decoding a token runs
// hundreds of short parallel sections, and a sleep-and-wake per section costs more than the
// work of a small one.
class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return int(workers_.size()) + 1; }
  // fn(begin, end) over disjoint ranges covering [0, n).
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  // Written under mutex_; atomic so that waiters can poll them before sleeping on a condition.
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stopping_{false};
};

}  // namespace jetmoe
