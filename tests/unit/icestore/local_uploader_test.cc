#include <gtest/gtest.h>

#include <cstdio>
#include <regex>

#include "archive_reader.h"
#include "dataflow/icestore/local_directory_uploader.h"
#include "dataflow/messagepipeline/errors.h"

namespace dataflow::icestore {
namespace {

TEST(LocalDirectoryUploader, RejectsBadOptions) {
  EXPECT_EQ(LocalDirectoryUploader::Create({.root = ""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto dir = test::FreshDir("opts");
  for (const char* prefix : {"/abs", "../up", "a/../b", "a//b"}) {
    auto r = LocalDirectoryUploader::Create({.root = dir.string(), .prefix = prefix});
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << prefix;
  }
  EXPECT_FALSE(LocalDirectoryUploader::Create({.root = dir.string(), .gzip = {.level = 0}}).ok());
  // A root that is a file cannot become a directory.
  const auto file = dir / "file";
  std::ofstream(file) << "x";
  EXPECT_FALSE(LocalDirectoryUploader::Create({.root = file.string()}).ok());
  std::filesystem::remove_all(dir);
}

TEST(LocalDirectoryUploader, WritesOneGzipObjectPerGroupUnderPrefixAndKey) {
  auto dir = test::FreshDir("layout");
  auto up = LocalDirectoryUploader::Create({.root = dir.string(), .prefix = "archive/v1"});
  ASSERT_TRUE(up.ok()) << up.status();
  std::string jsonl;
  for (int i = 0; i < 3; ++i) {
    jsonl += EncodeArchivalLine({.id = "m" + std::to_string(i),
                                 .batch_key = "2025/06/15/loc",
                                 .original_payload = "payload"});
  }
  auto name = (*up)->Upload({.batch_key = "2025/06/15/loc", .jsonl = jsonl, .records = 3});
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_TRUE(std::regex_match(
      *name, std::regex(R"(archive/v1/2025/06/15/loc/[0-9a-f]{16}-[0-9a-f]{16}\.jsonl\.gz)")))
      << *name;
  // The Go README's example prefix ends in '/': the same names, never "archive/v1//...".
  auto slash = LocalDirectoryUploader::Create({.root = dir.string(), .prefix = "archive/v1/"});
  ASSERT_TRUE(slash.ok()) << slash.status();
  auto slashed = (*slash)->Upload({.batch_key = "2025/06/15/loc", .jsonl = jsonl, .records = 3});
  ASSERT_TRUE(slashed.ok()) << slashed.status();
  EXPECT_TRUE(slashed->starts_with("archive/v1/2025/06/15/loc/")) << *slashed;
  std::filesystem::remove(dir / *slashed);
  auto name2 = (*up)->Upload({.batch_key = "2025/06/15/loc", .jsonl = jsonl, .records = 3});
  ASSERT_TRUE(name2.ok());
  EXPECT_NE(*name, *name2);

  std::vector<std::string> errors;
  auto objects = test::ReadArchive(dir, &errors);
  EXPECT_TRUE(errors.empty()) << errors.front();  // also: no temp files left behind
  ASSERT_EQ(objects.size(), 2u);
  EXPECT_EQ(objects[0].records.size(), 3u);
  EXPECT_EQ(objects[0].records[1].id, "m1");

  // And the system's zcat reads it, as the archive contract says.
  const std::string cmd = "zcat '" + (dir / *name).string() + "' | wc -l";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[64] = {};
  ASSERT_NE(std::fgets(buf, sizeof(buf), p), nullptr);
  EXPECT_EQ(::pclose(p), 0);
  EXPECT_EQ(std::stoi(buf), 3);
  std::filesystem::remove_all(dir);
}

// The uploader remembers the directories it made (to skip mkdir per object); one removed
// behind its back is made again, and the upload still succeeds the first time.
TEST(LocalDirectoryUploader, RemakesADirectoryRemovedBetweenUploads) {
  auto dir = test::FreshDir("removed");
  auto up = LocalDirectoryUploader::Create({.root = dir.string()});
  ASSERT_TRUE(up.ok()) << up.status();
  const std::string line = EncodeArchivalLine({.id = "m", .batch_key = "2025/06/15/loc"});
  ASSERT_TRUE((*up)->Upload({.batch_key = "2025/06/15/loc", .jsonl = line, .records = 1}).ok());
  std::filesystem::remove_all(dir / "2025");
  auto again = (*up)->Upload({.batch_key = "2025/06/15/loc", .jsonl = line, .records = 1});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(std::filesystem::exists(dir / *again));
  std::filesystem::remove_all(dir);
}

TEST(LocalDirectoryUploader, RefusesUnsafeKeys) {
  auto dir = test::FreshDir("unsafe");
  auto up = LocalDirectoryUploader::Create({.root = (dir / "root").string()});
  ASSERT_TRUE(up.ok());
  for (const char* key : {"../escape", "/abs", "a/../../b", "", "a\nb"}) {
    auto r = (*up)->Upload({.batch_key = key, .jsonl = "{}\n", .records = 1});
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << key;
  }
  std::vector<std::string> errors;
  EXPECT_TRUE(test::ReadArchive(dir, &errors).empty());
  EXPECT_FALSE(std::filesystem::exists(dir / "escape"));
  std::filesystem::remove_all(dir);
}

TEST(LocalDirectoryUploader, UnwritablePathIsAnErrorNotACrash) {
  auto dir = test::FreshDir("blocked");
  auto up = LocalDirectoryUploader::Create({.root = dir.string()});
  ASSERT_TRUE(up.ok());
  std::ofstream(dir / "k") << "a file where the key directory should go";
  auto r = (*up)->Upload({.batch_key = "k", .jsonl = "{}\n", .records = 1});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  // The machine's problem, not the data's: transient, so the group is redelivered.
  EXPECT_FALSE(messagepipeline::IsPermanent(r.status()));
  std::filesystem::remove_all(dir);
}

TEST(LocalDirectoryUploader, ANameTheFilesystemRefusesIsPermanent) {
  auto dir = test::FreshDir("toolong");
  auto up = LocalDirectoryUploader::Create({.root = dir.string()});
  ASSERT_TRUE(up.ok());
  // One segment past NAME_MAX (255 on Linux filesystems): mkdir fails with ENAMETOOLONG.
  const std::string key = "2025/01/02/" + std::string(300, 'x');
  auto r = (*up)->Upload({.batch_key = key, .jsonl = "{}\n", .records = 1});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_TRUE(messagepipeline::IsPermanent(r.status())) << r.status();
  std::vector<std::string> errors;
  EXPECT_TRUE(test::ReadArchive(dir, &errors).empty());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dataflow::icestore
