// Test helper: reads every *.jsonl.gz under a directory back into (object name, lines).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "dataflow/icestore/archival.h"
#include "dataflow/icestore/gzip.h"

namespace dataflow::icestore::test {

struct ArchivedObject {
  std::string name;  // relative to the root
  std::vector<ArchivalData> records;
};

inline std::vector<ArchivedObject> ReadArchive(const std::filesystem::path& root,
                                               std::vector<std::string>* errors) {
  std::vector<ArchivedObject> out;
  if (!std::filesystem::exists(root)) return out;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = std::filesystem::relative(entry.path(), root).string();
    if (!name.ends_with(".jsonl.gz")) {
      errors->push_back("stray file " + name);
      continue;
    }
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    auto text = GzipDecompress(ss.str());
    if (!text.ok()) {
      errors->push_back(name + ": " + std::string(text.status().message()));
      continue;
    }
    ArchivedObject obj{.name = name};
    std::size_t start = 0;
    while (start < text->size()) {
      std::size_t end = text->find('\n', start);
      if (end == std::string::npos) {
        errors->push_back(name + ": last line lacks a newline");
        break;
      }
      auto rec = DecodeArchivalLine(std::string_view(*text).substr(start, end - start));
      if (rec.ok()) {
        obj.records.push_back(*rec);
      } else {
        errors->push_back(name + ": " + std::string(rec.status().message()));
      }
      start = end + 1;
    }
    out.push_back(std::move(obj));
  }
  return out;
}

// A fresh directory under TMPDIR for one test.
inline std::filesystem::path FreshDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("dataflow-icestore-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace dataflow::icestore::test
