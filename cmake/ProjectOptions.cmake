# Project-wide compile settings, applied per target (never through global
# CMAKE_CXX_FLAGS) by iocp_chat_configure_target().

# The Windows headers' settings, the same in every file that includes them,
# so that no header defines them itself: WIN32_LEAN_AND_MEAN keeps windows.h
# from pulling in the old winsock.h (which clashes with winsock2.h), NOMINMAX
# keeps it from defining min and max macros (which break std::min), and
# 0x0601 asks for the Windows 7 API (which includes
# GetQueuedCompletionStatusEx). Every target gets them, and so does whatever
# links iocp_chat_common; one precompiled header can then serve every test
# program (ProjectTesting.cmake).
set(IOCP_CHAT_WIN32_DEFINITIONS WIN32_LEAN_AND_MEAN NOMINMAX _WIN32_WINNT=0x0601)

# Warnings, sanitizers and platform libraries for one of the project's targets.
function(iocp_chat_configure_target target)
  if(MSVC)
    target_compile_options(${target} PRIVATE /W4 /utf-8)
    if(IOCP_CHAT_WARNINGS_AS_ERRORS)
      target_compile_options(${target} PRIVATE /WX)
    endif()
  else()
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                           -Wconversion -Wsign-conversion -Wnon-virtual-dtor)
    if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
      # The CriticalSection wrapper carries clang's capability annotations.
      target_compile_options(${target} PRIVATE -Wthread-safety)
    endif()
    if(IOCP_CHAT_WARNINGS_AS_ERRORS)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
  if(IOCP_CHAT_SANITIZERS)
    target_compile_options(${target} PRIVATE -fsanitize=${IOCP_CHAT_SANITIZERS} -fno-omit-frame-pointer
                           -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${IOCP_CHAT_SANITIZERS})
  endif()
  if(WIN32)
    target_compile_definitions(${target} PRIVATE ${IOCP_CHAT_WIN32_DEFINITIONS})
  endif()
  if(MINGW)
    # One self-contained .exe: no MinGW runtime DLLs next to it under Wine.
    target_link_options(${target} PRIVATE -static)
  endif()
endfunction()
