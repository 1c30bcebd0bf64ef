# Installs sda into a scratch prefix, then configures, builds and runs the consumer project
# against it with find_package(sda), three ways (tests/install/consumer/CMakeLists.txt):
#   bare        pkg-config, libtorch, MPI and oneDNN hidden: sda::sda alone, no optional target
#   components  COMPONENTS hdf5 fftw (torch too when WITH_TORCH, mpi when WITH_MPI, dnnl when WITH_DNNL):
#               the optional targets work
#   missing     COMPONENTS hdf5 with pkg-config hidden: fails, naming the Debian package
file(REMOVE_RECURSE ${WORK_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix
                RESULT_VARIABLE status)
if(status)
  message(FATAL_ERROR "cmake --install failed")
endif()

set(hidden -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON
           -DCMAKE_DISABLE_FIND_PACKAGE_dnnl=ON)
function(configure mode)
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install/consumer -B ${WORK_DIR}/${mode}
                          -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
                          -DCMAKE_BUILD_TYPE=Release -DSDA_CONSUMER=${mode} ${ARGN}
                  RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE output)
  set(status ${status} PARENT_SCOPE)
  set(output "${output}" PARENT_SCOPE)
endfunction()
function(build_and_run mode)
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/${mode} RESULT_VARIABLE status)
  if(status)
    message(FATAL_ERROR "${mode}: building the consumer failed")
  endif()
  execute_process(COMMAND ${WORK_DIR}/${mode}/consumer ${WORK_DIR} RESULT_VARIABLE status)
  if(status)
    message(FATAL_ERROR "${mode}: the consumer failed")
  endif()
endfunction()

configure(bare ${hidden})
if(status)
  message(FATAL_ERROR "bare: find_package(sda) failed without HDF5, FFTW, libtorch, MPI and oneDNN:\n${output}")
endif()
build_and_run(bare)

configure(components -DSDA_CONSUMER_TORCH=${WITH_TORCH} -DSDA_CONSUMER_MPI=${WITH_MPI} -DSDA_CONSUMER_DNNL=${WITH_DNNL})
if(status)
  message(FATAL_ERROR "components: find_package(sda COMPONENTS hdf5 fftw) failed:\n${output}")
endif()
build_and_run(components)

configure(missing ${hidden})
if(NOT status)
  message(FATAL_ERROR "missing: find_package(sda COMPONENTS hdf5) succeeded without HDF5:\n${output}")
endif()
if(NOT output MATCHES "libhdf5-dev")
  message(FATAL_ERROR "missing: the failure does not name the Debian package libhdf5-dev:\n${output}")
endif()
message(STATUS "bare, components and missing consumers behave")
