// Implements: dist_env_from / read_dist_env / describe (see edgerazor/distributed/dist_env.h).
#include "edgerazor/distributed/dist_env.h"

#include <cerrno>
#include <cstdlib>
#include <string>

#include "edgerazor/core/error.h"

extern char** environ;

namespace edgerazor::distributed {
namespace {

const char* lookup(const std::map<std::string, std::string>& env, const std::string& key) {
  auto it = env.find(key);
  return it == env.end() ? nullptr : it->second.c_str();
}

// Whole-string integer in [lo, hi]; anything else names the variable.
int parse_int(const std::string& name, const char* text, long lo, long hi) {
  errno = 0;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (text[0] == '\0' || *end != '\0' || errno != 0 || value < lo || value > hi)
    throw ConfigError(name + "=" + text + ": expected an integer in [" + std::to_string(lo) + ", " +
                      std::to_string(hi) + "]");
  return static_cast<int>(value);
}

}  // namespace

DistEnv dist_env_from(const std::map<std::string, std::string>& env) {
  DistEnv out;
  const char* world = lookup(env, "WORLD_SIZE");
  const char* rank = lookup(env, "RANK");
  if (world != nullptr) out.world_size = parse_int("WORLD_SIZE", world, 1, 1 << 20);
  if (rank != nullptr) out.rank = parse_int("RANK", rank, 0, 1 << 20);
  if (out.rank >= out.world_size)
    throw ConfigError("RANK=" + std::to_string(out.rank) + " is not below WORLD_SIZE=" +
                      std::to_string(out.world_size));

  out.local_rank = out.rank;
  out.local_world_size = out.world_size;
  if (const char* v = lookup(env, "LOCAL_RANK")) out.local_rank = parse_int("LOCAL_RANK", v, 0, 1 << 20);
  if (const char* v = lookup(env, "LOCAL_WORLD_SIZE"))
    out.local_world_size = parse_int("LOCAL_WORLD_SIZE", v, 1, 1 << 20);
  if (out.local_rank >= out.local_world_size)
    throw ConfigError("LOCAL_RANK=" + std::to_string(out.local_rank) + " is not below LOCAL_WORLD_SIZE=" +
                      std::to_string(out.local_world_size));
  if (out.local_world_size > out.world_size)
    throw ConfigError("LOCAL_WORLD_SIZE=" + std::to_string(out.local_world_size) + " exceeds WORLD_SIZE=" +
                      std::to_string(out.world_size));

  const char* addr = lookup(env, "MASTER_ADDR");
  const char* port = lookup(env, "MASTER_PORT");
  if (out.world_size > 1) {
    if (rank == nullptr) throw ConfigError("WORLD_SIZE=" + std::to_string(out.world_size) + " but RANK is not set");
    if (addr == nullptr || addr[0] == '\0')
      throw ConfigError("WORLD_SIZE=" + std::to_string(out.world_size) +
                        " but MASTER_ADDR is not set (the host of rank 0)");
    if (port == nullptr) throw ConfigError("WORLD_SIZE=" + std::to_string(out.world_size) + " but MASTER_PORT is not set");
  }
  if (addr != nullptr && addr[0] != '\0') out.master_addr = addr;
  if (port != nullptr) out.master_port = parse_int("MASTER_PORT", port, 1, 65535);

  if (const char* v = lookup(env, "EDGERAZOR_DIST_TIMEOUT")) {
    char* end = nullptr;
    const double seconds = std::strtod(v, &end);
    if (v[0] == '\0' || *end != '\0' || !(seconds > 0))
      throw ConfigError(std::string("EDGERAZOR_DIST_TIMEOUT=") + v + ": expected a positive number of seconds");
    out.timeout_s = seconds;
  }
  return out;
}

DistEnv read_dist_env() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string entry = *e;
    const auto eq = entry.find('=');
    if (eq != std::string::npos) env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return dist_env_from(env);
}

std::string describe(const DistEnv& env) {
  return "rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) + " (local " +
         std::to_string(env.local_rank) + " of " + std::to_string(env.local_world_size) + ", master " +
         env.master_addr + ":" + std::to_string(env.master_port) + ")";
}

}  // namespace edgerazor::distributed
