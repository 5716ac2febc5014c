# Install rules for the libraries: one export set ("component") per package, each with a
# small file of the dependencies its targets need, so that
#   find_package(dataflow CONFIG REQUIRED COMPONENTS messagepipeline mqttconverter)
# looks for neither gRPC nor protobuf. dataflowConfig.cmake loads the requested components,
# the components they require, and each one's dependencies (see dataflowConfig.cmake.in).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(DATAFLOW_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/dataflow)

# dataflow_install_component(<component> TARGETS <t>... [REQUIRES <component>...]
#                            [FIND <dependency>...])
# Installs the targets (exported as dataflow::<name without the dataflow_ prefix>) in the
# export set of <component>. REQUIRES names the components their public or link-only
# interface refers to; FIND the packages it needs: a CMake package name (found in CONFIG
# mode unless it is one of CMake's own Find modules), or pkg:<PREFIX>:<module> for a
# pkg-config module whose PkgConfig::<PREFIX> target the interface names.
function(dataflow_install_component component)
  cmake_parse_arguments(C "" "" "TARGETS;REQUIRES;FIND" ${ARGN})
  foreach(target IN LISTS C_TARGETS)
    string(REGEX REPLACE "^dataflow_" "" export_name ${target})
    set_target_properties(${target} PROPERTIES EXPORT_NAME ${export_name})
  endforeach()
  install(TARGETS ${C_TARGETS} EXPORT dataflow-${component}-targets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT devel
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT devel
          INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(EXPORT dataflow-${component}-targets NAMESPACE dataflow::
          DESTINATION ${DATAFLOW_INSTALL_CMAKEDIR} COMPONENT devel)

  set(code "# Generated: what the targets of component ${component} need.\n")
  string(APPEND code "set(_dataflow_requires_${component} ${C_REQUIRES})\n")
  foreach(dep IN LISTS C_FIND)
    if(dep MATCHES "^pkg:([A-Za-z0-9_]+):(.+)$")
      string(APPEND code "find_dependency(PkgConfig)\n"
             "if(NOT TARGET PkgConfig::${CMAKE_MATCH_1})\n"
             "  pkg_check_modules(${CMAKE_MATCH_1} REQUIRED IMPORTED_TARGET ${CMAKE_MATCH_2})\n"
             "endif()\n")
    elseif(dep MATCHES "^(Threads|OpenSSL|CURL|Protobuf)$")
      string(APPEND code "find_dependency(${dep})\n")
    else()
      string(APPEND code "find_dependency(${dep} CONFIG)\n")
    endif()
  endforeach()
  set(deps_file ${PROJECT_BINARY_DIR}/dataflow-install/dataflow-${component}-dependencies.cmake)
  file(WRITE ${deps_file} "${code}")
  install(FILES ${deps_file} DESTINATION ${DATAFLOW_INSTALL_CMAKEDIR} COMPONENT devel)
  set_property(GLOBAL APPEND PROPERTY DATAFLOW_INSTALLED_COMPONENTS ${component})
endfunction()

# Called once at the end of the top-level CMakeLists.txt, when every package is defined.
function(dataflow_install_package)
  get_property(components GLOBAL PROPERTY DATAFLOW_INSTALLED_COMPONENTS)
  set(DATAFLOW_CONFIG_COMPONENTS ${components})
  configure_package_config_file(
    ${PROJECT_SOURCE_DIR}/cmake/dataflowConfig.cmake.in
    ${PROJECT_BINARY_DIR}/dataflow-install/dataflowConfig.cmake
    INSTALL_DESTINATION ${DATAFLOW_INSTALL_CMAKEDIR})
  write_basic_package_version_file(
    ${PROJECT_BINARY_DIR}/dataflow-install/dataflowConfigVersion.cmake
    COMPATIBILITY SameMinorVersion)
  install(FILES ${PROJECT_BINARY_DIR}/dataflow-install/dataflowConfig.cmake
                ${PROJECT_BINARY_DIR}/dataflow-install/dataflowConfigVersion.cmake
          DESTINATION ${DATAFLOW_INSTALL_CMAKEDIR} COMPONENT devel)

  # Headers of the packages built (the gcp folder also holds gcp_auth's headers).
  foreach(pkg messagepipeline metrics gcp pubsub cache mqttconverter enrichment icestore bqstore)
    if(TARGET dataflow_${pkg} OR (pkg STREQUAL "gcp" AND TARGET dataflow_gcp_auth))
      install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/dataflow/${pkg}
              DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/dataflow COMPONENT devel)
    endif()
  endforeach()
  install(FILES ${PROJECT_BINARY_DIR}/include/dataflow/version.h
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/dataflow COMPONENT devel)

  # pkg-config for the gRPC-free core, for builds that do not use CMake. The libraries are
  # static, so their dependencies go in Requires/Libs (not .private): plain
  # `pkg-config --cflags --libs dataflow` links.
  set(libs "")
  set(requires "absl_status absl_statusor absl_strings absl_time absl_cord absl_flat_hash_map")
  string(APPEND requires " nlohmann_json spdlog fmt")
  foreach(pkg mqttconverter enrichment cache metrics messagepipeline logging)
    if(TARGET dataflow_${pkg})
      string(APPEND libs " -ldataflow_${pkg}")
    endif()
  endforeach()
  if(TARGET dataflow_mqttconverter)
    string(APPEND requires " openssl")
  endif()
  if(TARGET dataflow_cache)
    string(APPEND requires " absl_hash hiredis")
  endif()
  if(TARGET dataflow_metrics)
    string(APPEND requires " prometheus-cpp-core")
  endif()
  # Relocatable: the prefix is found from the .pc file's own place (cmake --install --prefix).
  file(RELATIVE_PATH pc_to_prefix /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
  set(DATAFLOW_PC_PREFIX "\${pcfiledir}/${pc_to_prefix}")
  set(DATAFLOW_PC_LIBS "${libs}")
  set(DATAFLOW_PC_REQUIRES "${requires}")
  configure_file(${PROJECT_SOURCE_DIR}/cmake/dataflow.pc.in
                 ${PROJECT_BINARY_DIR}/dataflow-install/dataflow.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/dataflow-install/dataflow.pc
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT devel)
endfunction()
