// nvemu-tgt --config-autosave FILE: keeps FILE equal to save_config.
//
// When: each RPC that succeeds writes FILE before its reply is sent (when
// the configuration changed), so a client that saw "success" can kill -9
// the daemon at once and the change is in FILE. That puts one fsync in the
// latency of each changing RPC — configuration, never the I/O path. A 1 s
// timer catches changes no RPC made (a remote controller's namespace
// appearing). Read-only RPCs cost a comparison, no write.
//
// How: the JSON goes to FILE.tmp.<pid> in the same directory, is fsynced,
// renamed over FILE, and the directory is fsynced: a crash at any point
// leaves either the old or the new file whole, never a mix.
//
// Autosave starts after a -c replay finished, so a replay that fails half
// way never overwrites the file it came from.
#pragma once

#include <string>

namespace nvemu::app {

// Checks that FILE can be written (its directory exists and is writable);
// "" or the reason with the fix.
std::string check_autosave_path(const std::string& path);
// Main reactor. Writes FILE now and keeps it current until stop_autosave().
void start_autosave(const std::string& path);
void stop_autosave();
// Writes `text` to `path` atomically as above; "" or why not.
std::string write_file_atomically(const std::string& path, const std::string& text);

}  // namespace nvemu::app
