#include "serve/job.h"

namespace jetmoe::serve {

bool Job::wait(std::vector<JobEvent>& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return !events_.empty() || ended_; });
  for (JobEvent& e : events_) out.push_back(std::move(e));
  events_.clear();
  return ended_;
}

JobOutcome Job::outcome() const {
  std::lock_guard lock(mutex_);
  return outcome_;
}

void Job::push(JobEvent event) {
  {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  changed_.notify_all();
}

void Job::end(JobOutcome outcome) {
  {
    std::lock_guard lock(mutex_);
    if (ended_) return;
    ended_ = true;
    outcome_ = std::move(outcome);
  }
  changed_.notify_all();
}

bool Job::ended() const {
  std::lock_guard lock(mutex_);
  return ended_;
}

}  // namespace jetmoe::serve
