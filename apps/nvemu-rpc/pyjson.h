// JSON text exactly as Python's json.dumps writes it (what rpc.py prints):
// ", "/": " separators, `indent` spaces per level (or one line when indent
// < 0, Python's indent=None), non-ASCII escaped as \uXXXX (ensure_ascii),
// object members in the order the server sent them.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace nvemu::rpccli {

using Json = nlohmann::ordered_json;

std::string py_dumps(const Json& j, int indent = 2);

// rpc.py's print_dict: json.dumps(d, indent=2).
std::string print_dict_text(const Json& j);
// rpc.py's print_json: the same with surrounding quotes stripped, so a
// string result ("Malloc0") prints bare.
std::string print_json_text(const Json& j);

// Compact UTF-8 text for the wire; never throws on bad UTF-8 (replaced).
std::string wire_dump(const Json& j);

}  // namespace nvemu::rpccli
