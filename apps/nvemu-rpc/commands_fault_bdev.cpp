// rpc.py's bdev_error_* and bdev_delay_* parsers (SPDK v24.01 scripts/rpc.py
// and python/spdk/rpc/bdev.py, a superset of v23.01.1's): the same
// positionals, flags and params.
#include "commands.h"

namespace nvemu::rpccli {

std::vector<Command> fault_bdev_commands() {
  const ArgType kInt = ArgType::kInt;
  return {
      {"bdev_error_create",
       "Add bdev with error injection backend",
       {pos("base_name", "base bdev name"),
        opt("", "--uuid", "UUID for this bdev").when(Emit::kNotNull)},
       Output::kJson},
      {"bdev_error_delete", "Delete an error bdev", {pos("name", "error bdev name")}},
      {"bdev_error_inject_error",
       "bdev inject error",
       {pos("name", "the name of the error injection bdev"),
        pos("io_type", "io_type: 'clear' 'read' 'write' 'unmap' 'flush' 'all'"),
        pos("error_type", "error_type: 'failure' 'pending' 'corrupt_data' 'nomem'"),
        opt("-n", "--num", "the number of commands you want to fail", kInt),
        opt("-q", "--queue-depth", "the queue depth at which to trigger the error", kInt),
        opt("-o", "--corrupt-offset", "the offset in bytes to xor with corrupt_value", kInt),
        opt("-v", "--corrupt-value", "the value for xor (1-255, 0 is invalid)", kInt)}},
      {"bdev_delay_create",
       "Add a delay bdev on existing bdev",
       {opt("-b", "--base-bdev-name", "Name of the existing bdev").required(),
        opt("-d", "--name", "Name of the delay bdev").required(),
        opt("-u", "--uuid", "UUID of the bdev (optional)"),
        opt("-r", "--avg-read-latency",
            "Average latency to apply before completing read ops (in microseconds)", kInt)
            .required()
            .when(Emit::kNotNull),
        opt("-t", "--nine-nine-read-latency",
            "latency to apply to 1 in 100 read ops (in microseconds)", kInt)
            .required()
            .to("p99_read_latency")
            .when(Emit::kNotNull),
        opt("-w", "--avg-write-latency",
            "Average latency to apply before completing write ops (in microseconds)", kInt)
            .required()
            .when(Emit::kNotNull),
        opt("-n", "--nine-nine-write-latency",
            "latency to apply to 1 in 100 write ops (in microseconds)", kInt)
            .required()
            .to("p99_write_latency")
            .when(Emit::kNotNull)},
       Output::kJson},
      {"bdev_delay_delete", "Delete a delay bdev", {pos("name", "delay bdev name")}},
      {"bdev_delay_update_latency",
       "Update one of the latency values for a given delay bdev",
       {pos("delay_bdev_name", "The name of the given delay bdev"),
        pos("latency_type",
            "one of: avg_read, avg_write, p99_read, p99_write. No other values accepted."),
        pos("latency_us", "new latency value in microseconds.", kInt).when(Emit::kNotNull)},
       Output::kJson},
  };
}

}  // namespace nvemu::rpccli
