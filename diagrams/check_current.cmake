# check_current.cmake — fails unless every committed diagrams/*.svg is exactly
# what Graphviz renders from its .dot source now, and every .dot has one.
#   cmake -DDOT=dot -DDIAGRAMS=dir -DWORK=scratch-dir -P check_current.cmake
file(GLOB sources ${DIAGRAMS}/*.dot)
if(NOT sources)
  message(FATAL_ERROR "no .dot files in ${DIAGRAMS}")
endif()
file(MAKE_DIRECTORY ${WORK})
set(stale)
foreach(source IN LISTS sources)
  get_filename_component(name ${source} NAME_WE)
  execute_process(COMMAND ${DOT} -Tsvg ${source} -o ${WORK}/${name}.svg RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "dot failed on ${source}")
  endif()
  if(NOT EXISTS ${DIAGRAMS}/${name}.svg)
    list(APPEND stale "${name}.svg (missing)")
    continue()
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${WORK}/${name}.svg ${DIAGRAMS}/${name}.svg
                  RESULT_VARIABLE different)
  if(different)
    list(APPEND stale "${name}.svg")
  endif()
endforeach()
if(stale)
  list(JOIN stale ", " names)
  message(FATAL_ERROR "Not what their .dot sources render to: ${names}.\n"
                      "Run: cmake --build --preset docs --target update_diagrams\n"
                      "then look at them and commit them.")
endif()
message(STATUS "every diagram is current")
