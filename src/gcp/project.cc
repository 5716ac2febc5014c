#include "dataflow/gcp/project.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace dataflow::gcp {

absl::Status ValidateProjectId(std::string_view project_id) {
  // Real ids are 6-30 lowercase letters, digits and hyphens, but emulators accept any name
  // ("p", "test-project_1"), so only reject what would corrupt a resource name.
  if (project_id.empty()) return absl::InvalidArgumentError("project id is empty");
  if (project_id.size() > 100) {
    return absl::InvalidArgumentError("project id is longer than 100 characters");
  }
  for (char c : project_id) {
    if (c == '/' || absl::ascii_isspace(static_cast<unsigned char>(c)) ||
        absl::ascii_iscntrl(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(
          absl::StrCat("project id \"", absl::string_view(project_id.data(), project_id.size()),
                       "\" contains '/', whitespace or a control character"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ResolveProjectId(std::string_view configured) {
  std::string id(configured);
  std::string source = "configured project id";
  if (id.empty()) {
    const char* env = std::getenv("GOOGLE_CLOUD_PROJECT");
    if (env == nullptr || *env == '\0') {
      return absl::InvalidArgumentError(
          "no project id: set it in the configuration or in GOOGLE_CLOUD_PROJECT");
    }
    id = env;
    source = "GOOGLE_CLOUD_PROJECT";
  }
  if (auto s = ValidateProjectId(id); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", s.message()));
  }
  return id;
}

}  // namespace dataflow::gcp
