# Project-wide compile settings, applied per target (never through global
# CMAKE_CXX_FLAGS) by iocp_chat_configure_target().

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
  if(MINGW)
    # One self-contained .exe: no MinGW runtime DLLs next to it under Wine.
    target_link_options(${target} PRIVATE -static)
  endif()
endfunction()
