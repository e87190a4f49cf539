# GoogleTest for every build: Debian's packaged library natively, built from
# /usr/src/googletest (Debian's `googletest` package) when cross-compiling,
# because the Windows test programs need a Windows GoogleTest.
include(GoogleTest)

if(CMAKE_CROSSCOMPILING)
  set(BUILD_GMOCK OFF CACHE BOOL "" FORCE)
  set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
  set(gtest_force_shared_crt ON CACHE BOOL "" FORCE)
  add_subdirectory(/usr/src/googletest ${CMAKE_BINARY_DIR}/_googletest EXCLUDE_FROM_ALL SYSTEM)
  # GoogleTest 1.11 and later define the GTest:: aliases themselves.
  if(NOT TARGET GTest::gtest)
    add_library(GTest::gtest ALIAS gtest)
    add_library(GTest::gtest_main ALIAS gtest_main)
  endif()
else()
  find_package(GTest REQUIRED)
endif()

# Discovery runs when ctest starts (PRE_TEST), so building needs no Wine and a
# slow Wine start-up cannot fail the build.
set(CMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE PRE_TEST)

# Compile settings for a test program: the project's (warnings, sanitizers)
# plus, after the build type's flags, no optimisation (-O0) and debug
# information cut to line tables (-g1) where the build type asks for any.
# A test program's own code is sockets, waits and assertions; what it tests
# (the servers, the port layer, the codec) is in the libraries, which keep
# the configuration's flags. -O0 halves the compile time of the big test
# files under the sanitizers and cuts it by a third elsewhere (measured on
# v2_reliability_test.cpp: ASan 31.8 s at -O1, 14.3 s at -O0; TSan 11.3 s
# at -O2, 5.6 s; GCC 10.4 s at -O2, 6.8 s); -g1 is enough for a
# sanitizer's or a debugger's backtrace with file:line. On 2 cores that is
# minutes of every run of the whole suite.
function(iocp_chat_configure_test_target target)
  iocp_chat_configure_target(${target})
  if(NOT MSVC)
    target_compile_options(${target} PRIVATE -O0 $<$<CONFIG:Debug,RelWithDebInfo>:-g1>)
  endif()
endfunction()

# One precompiled header for every GoogleTest program, built once per tree:
# GoogleTest's header and the standard headers most tests include are then
# parsed once, not once per test file (six test files took 0.88 × the time,
# 0.55–1.0 × over three interleaved rounds; 40 test files in each of three
# configurations). GCC only: clang (the tsan and
# fuzz presets) refuses a precompiled header whose macros differ from the
# command line's, and every test program defines its own paths. The owner is
# an object library of one empty file with the test programs' own flags and
# GoogleTest's macros (and on Windows the windows.h settings every target
# has) but no others: GCC refuses the header in a file where a macro defined
# when it was built is not defined, or where one the header uses is defined
# differently (-Winvalid-pch, which CMake adds, and -Werror stop the build
# then); extra macros that the header does not use — the paths and backends
# each test program defines — are fine.
function(iocp_chat_reuse_test_pch target)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    return()
  endif()
  if(NOT TARGET iocp_chat_test_pch)
    set(anchor ${CMAKE_BINARY_DIR}/iocp_chat_test_pch.cpp)
    file(CONFIGURE OUTPUT ${anchor} CONTENT "// The precompiled header's owner: nothing to compile of its own.\n")
    add_library(iocp_chat_test_pch OBJECT ${anchor})
    iocp_chat_configure_test_target(iocp_chat_test_pch)
    target_link_libraries(iocp_chat_test_pch PRIVATE GTest::gtest)
    target_precompile_headers(iocp_chat_test_pch PRIVATE
      <gtest/gtest.h> <atomic> <chrono> <condition_variable> <functional> <memory> <mutex> <string> <thread>
      <vector>)
  endif()
  target_precompile_headers(${target} REUSE_FROM iocp_chat_test_pch)
endfunction()

# A GoogleTest program from SOURCES, linked to LIBS, with every test labelled
# LABEL. PREFIX goes before each test's name in ctest, for a source built once
# per stage (its tests would otherwise have the same names twice). PROCESSORS
# (default 1) is how many of ctest's parallel slots each test takes: a test
# that runs a cluster of processes asks for two, so that fewer others run
# beside it.
function(iocp_chat_add_gtest name)
  cmake_parse_arguments(ARG "" "LABEL;PREFIX;PROCESSORS" "SOURCES;LIBS" ${ARGN})
  if(NOT ARG_PROCESSORS)
    set(ARG_PROCESSORS 1)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  iocp_chat_configure_test_target(${name})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main)
  iocp_chat_reuse_test_pch(${name})
  gtest_discover_tests(${name}
    TEST_PREFIX "${ARG_PREFIX}"
    DISCOVERY_TIMEOUT 120
    PROPERTIES LABELS "${ARG_LABEL}" TIMEOUT 300 PROCESSORS ${ARG_PROCESSORS})
endfunction()
