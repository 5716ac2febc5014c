// Whether a host name or address is this machine (loopback): "localhost", 127.0.0.0/8, ::1.
// Used to decide what may go over plaintext: traffic to a loopback host never leaves the
// machine. Header-only so the config reader (also built into its fuzzer) needs no library.
#pragma once

#include <string_view>

namespace dataflow {

// `host` without a port; an IPv6 address with or without brackets. Names other than
// "localhost" are not resolved (a name that resolves to 127.0.0.1 is still "not loopback":
// the answer must not depend on DNS).
inline bool IsLoopbackHost(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1") return true;
  if (!host.starts_with("127.")) return false;
  // 127.a.b.c with digits only: a name such as "127.example.com" is not loopback.
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 3;
}

// The host of "host:port", "[v6]:port" or a bare host.
inline std::string_view HostOfHostPort(std::string_view hostport) {
  if (hostport.starts_with('[')) {
    const auto close = hostport.find(']');
    return close == std::string_view::npos ? hostport : hostport.substr(0, close + 1);
  }
  // More than one ':' and no brackets: a bare IPv6 address without a port.
  const auto colon = hostport.rfind(':');
  if (colon == std::string_view::npos || hostport.find(':') != colon) return hostport;
  return hostport.substr(0, colon);
}

}  // namespace dataflow
