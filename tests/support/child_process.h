// A command run as a child process for end-to-end tests, its stdout and
// stderr going to a log file that the test reads to follow it.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace shoal::testing {

class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> argv, std::filesystem::path log) : log_(std::move(log)) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    std::vector<char*> args;
    for (auto& arg : argv) args.push_back(arg.data());
    args.push_back(nullptr);
    const int error = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (error != 0) throw std::runtime_error("cannot start " + argv[0]);
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() {
    if (running()) kill(SIGKILL);
  }

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // Sends `signal`, then waits: returns the status from waitpid.
  int kill(int signal) {
    ::kill(pid_, signal);
    return wait();
  }
  // Waits for the exit and returns the status from waitpid.
  int wait() {
    int status = 0;
    if (pid_ > 0) waitpid(pid_, &status, 0);
    pid_ = 0;
    return status;
  }
  std::string log() const {
    std::ifstream in(log_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  pid_t pid_ = 0;
  std::filesystem::path log_;
};

// The whitespace-free word after the first `prefix` in `text` (a port in a
// log line); empty if none. Plain string search: GCC 12's <regex> trips
// -Werror=maybe-uninitialized under the sanitizers.
inline std::string word_after(const std::string& text, const std::string& prefix) {
  const auto at = text.find(prefix);
  if (at == std::string::npos) return {};
  const auto begin = at + prefix.size();
  return text.substr(begin, text.find_first_of(" \n:", begin) - begin);
}

// Polls `condition` until it holds or `timeout` passes; returns whether it held.
// For waiting on another process's progress, which no call can block on.
inline bool eventually(const std::function<bool()>& condition, std::chrono::seconds timeout) {
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < give_up) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return condition();
}

// The endpoint a shoal-aggregator started with a "tcp://127.0.0.1:*" bind
// logs once it listens ("tcp://127.0.0.1:41234"); empty if it does not within 30 s.
inline std::string aggregator_endpoint(const ChildProcess& aggregator) {
  std::string endpoint;
  eventually([&] {
    const auto port = word_after(aggregator.log(), "listening on tcp://127.0.0.1:");
    if (!port.empty()) endpoint = "tcp://127.0.0.1:" + port;
    return !endpoint.empty();
  }, std::chrono::seconds(30));
  return endpoint;
}

}  // namespace shoal::testing
