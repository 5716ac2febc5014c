# OAuth access tokens for REST APIs (ADC). A library of its own so that REST-only packages
# (icestore, bqstore's table admin) get credentials without linking gRPC and the generated protos. Included by src/gcp, and by the top level when a build leaves the gcp package out
# (the demo preset) but builds a package that needs it.
if(TARGET dataflow_gcp_auth)
  return()
endif()
find_package(OpenSSL REQUIRED)
find_package(CURL REQUIRED)
add_library(dataflow_gcp_auth ${PROJECT_SOURCE_DIR}/src/gcp/access_token.cc
                              ${PROJECT_SOURCE_DIR}/src/gcp/credentials_file.cc
                              ${PROJECT_SOURCE_DIR}/src/gcp/http_client.cc
                              ${PROJECT_SOURCE_DIR}/src/gcp/token_exchange.cc
                              ${PROJECT_SOURCE_DIR}/src/gcp/token_sources.cc)
add_library(dataflow::gcp_auth ALIAS dataflow_gcp_auth)
target_include_directories(dataflow_gcp_auth PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>)
target_link_libraries(dataflow_gcp_auth
  PUBLIC absl::status absl::statusor
  PRIVATE dataflow::messagepipeline absl::strings nlohmann_json::nlohmann_json CURL::libcurl
          OpenSSL::Crypto)
dataflow_install_component(gcp_auth TARGETS dataflow_gcp_auth REQUIRES messagepipeline
  FIND absl nlohmann_json CURL OpenSSL)
