// Runs every registered native test, or those whose name contains one of the arguments.
#include <cstdio>
#include <cstring>
#include <exception>

#include "check.h"

namespace ncsn::test {
std::vector<Case>& registry() {
  static std::vector<Case> r;
  return r;
}
}  // namespace ncsn::test

int main(int argc, char** argv) {
  int failed = 0, run = 0, skipped = 0;
  for (const auto& c : ncsn::test::registry()) {
    bool chosen = argc == 1;
    for (int a = 1; a < argc; ++a) chosen = chosen || std::strstr(c.name, argv[a]);
    if (!chosen) continue;
    ++run;
    try {
      c.fn();
      std::printf("ok    %s\n", c.name);
    } catch (const ncsn::test::Skip& e) {
      ++skipped;
      std::printf("skip  %s: %s\n", c.name, e.what());
    } catch (const std::exception& e) {
      ++failed;
      std::printf("FAIL  %s\n      %s\n", c.name, e.what());
    }
  }
  std::printf("%d of %d native tests passed, %d skipped\n", run - failed - skipped, run, skipped);
  return failed ? 1 : 0;
}
