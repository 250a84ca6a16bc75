// Hostile inputs to the native core: shapes whose sizes would wrap int64, bounds on every size a
// caller chooses, cancellation between steps, and a thread pool whose threads cannot all start.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "check.h"
#include "core/limits.h"
#include "model/model.h"
#include "cpu/thread_pool.h"
#include "w1.h"

using namespace ncsn;
using test::random_values;

namespace {

// The message of the std::invalid_argument that f throws, or "" when it throws none.
template <typename F>
std::string invalid_argument_of(F f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

ModelConfig mlp(int64_t width, int64_t depth, int64_t levels = 4) {
  ModelConfig c;
  c.shape.width = width;
  c.shape.depth = depth;
  c.sigmas.clear();
  for (int64_t i = 0; i < levels; ++i) c.sigmas.push_back(20.0 * std::pow(0.999, static_cast<double>(i)));
  c.threads = 1;
  return c;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(a_width_whose_sizes_wrap_is_refused_before_allocating) {
  const std::string e = invalid_argument_of([] { Model m(mlp(int64_t(1) << 52, 2)); });
  CHECK(e == "the width must be between 1 and 65536 (got 4503599627370496)", "got '" << e << "'");
}

TEST(a_model_past_the_parameter_limit_is_refused) {
  const std::string deep = invalid_argument_of([] { Model m(mlp(65536, 1000)); });
  CHECK(contains(deep, "the model is too large"), "got '" << deep << "'");
  const std::string depth = invalid_argument_of([] { Model m(mlp(128, 1000000000)); });
  CHECK(depth == "the depth must be between 1 and 1000 (got 1000000000)", "got '" << depth << "'");
  const std::string levels = invalid_argument_of([] { Model m(mlp(8, 1, 10001)); });
  CHECK(levels == "the number of noise levels must be between 1 and 10000 (got 10001)", "got '" << levels << "'");
}

TEST(checked_products_stop_at_the_limit) {
  CHECK(checked_product(46340, 46340, Limits::elements, "x") == int64_t(46340) * 46340, "a product under the limit");
  CHECK(contains(invalid_argument_of([] { checked_product(int64_t(1) << 40, int64_t(1) << 40, Limits::elements, "x"); }),
                 "x is too large"),
        "a product that would wrap int64");
  MlpShape w1;
  CHECK(checked_mlp_param_count(w1) == static_cast<int64_t>(mlp_layout(w1).back().offset + mlp_layout(w1).back().size),
        "the checked count is the layout's");
}

TEST(host_sizes_past_the_available_memory_are_refused) {
  const std::string e = invalid_argument_of([] { check_host_memory(1e18, "an exabyte"); });
  CHECK(contains(e, "an exabyte needs 1000000000.0 GB of memory and "), "got '" << e << "'");
  CHECK(invalid_argument_of([] { check_host_memory(1e6, "a megabyte"); }).empty(), "a megabyte was refused");
}

TEST(sizes_of_a_batch_and_of_a_sample_are_bounded) {
  Model m(mlp(8, 1));
  auto data = random_values<float>(2 * 50, 3, -4, 4);
  m.set_data(data.data(), 50, 2);
  const std::string batch = invalid_argument_of([&] { m.train(1, int64_t(1) << 40, 1, [](const TrainProgress&) { return true; }); });
  CHECK(contains(batch, "a batch of 1099511627776 points of dimension 2 is too large"), "got '" << batch << "'");
  std::vector<float> out;
  SampleRequest r;
  r.sampler.steps_per_level = 1000000000000000;
  const std::string steps = invalid_argument_of([&] { m.sample(r, out, [](const SampleProgress&) { return true; }); });
  CHECK(contains(steps, "the steps per level must be between 1 and 1000000"), "got '" << steps << "'");
  r.sampler.steps_per_level = 1;
  r.n = int64_t(1) << 31;
  const std::string n = invalid_argument_of([&] { m.sample(r, out, [](const SampleProgress&) { return true; }); });
  CHECK(contains(n, "2147483648 samples of dimension 2 is too large"), "got '" << n << "'");
}

TEST(a_cancel_stops_training_after_the_current_step_and_reports_it) {
  Model m(mlp(8, 1));
  auto data = random_values<float>(2 * 50, 4, -4, 4);
  m.set_data(data.data(), 50, 2);
  std::atomic<bool> cancel{false};
  std::vector<int64_t> reported;
  const int64_t done = m.train(1000, 16, 500, [&](const TrainProgress& p) {
    reported.push_back(p.step);
    return true;
  }, &cancel);
  CHECK(done == 1000 && reported == std::vector<int64_t>({500, 1000}), "an uncancelled run");
  cancel = true;
  reported.clear();
  const int64_t stopped = m.train(1000, 16, 500, [&](const TrainProgress& p) {
    reported.push_back(p.step);
    return true;
  }, &cancel);
  CHECK(stopped == 1 && m.step() == 1001, "ran " << stopped << " steps after the cancel");
  CHECK(reported == std::vector<int64_t>({1001}), "the step before the cancel is reported");
}

TEST(a_cancel_stops_sampling_after_the_current_step) {
  Model m(test::exact_w1("cpu", 1));
  std::atomic<bool> cancel{true};
  SampleRequest r;
  r.n = 100;
  r.sampler.steps_per_level = 1000000;
  r.cancel = &cancel;
  std::vector<float> out;
  int reports = 0;
  for (SamplerKind kind : {SamplerKind::ald, SamplerKind::pc}) {
    r.sampler.kind = kind;
    const bool finished = m.sample(r, out, [&](const SampleProgress&) { return ++reports, true; });
    CHECK(!finished && reports == 0, "a cancelled sampler ran to a report");
  }
}

TEST(a_thread_pool_whose_threads_cannot_all_start_stops_those_that_did) {
  int started = 0;
  auto third_fails = [&](std::function<void()> body) {
    if (++started == 3) throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
    return std::thread(std::move(body));
  };
  std::string error;
  try {
    ThreadPool pool(6, third_fails);
  } catch (const std::runtime_error& e) {
    error = e.what();
  }
  CHECK(contains(error, "could not start CPU worker thread 3 of 5"), "got '" << error << "'");
  ThreadPool pool(3);
  std::atomic<int> ran{0};
  pool.run(100, [&](int64_t, int) { ++ran; });
  CHECK(ran == 100, "a pool made after the failure runs every task");
}

// Jobs back to back (the workers still polling), and jobs after the workers have gone to sleep:
// every task of every job runs exactly once, and an exception still reaches the caller after either.
TEST(a_thread_pool_runs_every_task_whether_its_threads_poll_or_sleep) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> count(64);
  auto job = [&](int64_t i, int) { ++count[static_cast<size_t>(i)]; };
  for (int rep = 0; rep < 2000; ++rep) pool.run(64, job);
  for (int rep = 0; rep < 5; ++rep) {
    std::this_thread::sleep_for(std::chrono::milliseconds(3));  // longer than a thread polls
    pool.run(64, job);
  }
  for (size_t i = 0; i < count.size(); ++i) CHECK(count[i] == 2005, "task " << i << " ran " << count[i] << " times");
  for (const bool asleep : {false, true}) {
    if (asleep) std::this_thread::sleep_for(std::chrono::milliseconds(3));
    std::string error;
    try {
      pool.run(8, [](int64_t i, int) {
        if (i == 5) throw std::runtime_error("task 5 failed");
      });
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
    CHECK(error == "task 5 failed", (asleep ? "after sleeping" : "while polling") << ": got '" << error << "'");
  }
}
