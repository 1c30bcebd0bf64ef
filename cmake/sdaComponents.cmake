# sda's optional targets, each for the headers that need one more dependency. Included by sda's
# own CMakeLists.txt and by the installed sdaConfig.cmake, so a build tree and an installed sda
# define them the same way:
#
#   target      headers                                   needs (Debian package)
#   sda::hdf5   sda/io/hdf5.hpp                           HDF5 via pkg-config (libhdf5-dev, pkg-config)
#   sda::fftw   sda/systems/kolmogorov.hpp                FFTW via pkg-config (libfftw3-dev, pkg-config)
#   sda::torch  sda/backend/torch.hpp, sda/nn/torch.hpp,  libtorch via find_package(Torch) (libtorch-dev,
#               sda/observe/torch.hpp                     a CPU build; or a CUDA build of torch)
#   sda::mpi    sda/mpi.hpp, sda/mpi/*.hpp                MPI for C++ via find_package(MPI) (libopenmpi-dev,
#                                                         openmpi-bin)
#   sda::dnnl   sda/nn/dnnl.hpp: float convolutions of    oneDNN via find_package(dnnl) (libdnnl-dev), and
#               sda/nn/conv.hpp in oneDNN (defines        OpenMP's runtime library (libgomp, with g++)
#               SDA_WITH_DNNL for every file of the
#               program: link it to all or none)
#
# sda_find_component(NAME [REQUIRED]) looks for one of them and, when found, defines sda::NAME on
# top of sda::sda and sets sda_NAME_FOUND. Without REQUIRED a missing dependency only leaves the
# target undefined; with it, configuring stops with an error naming the Debian package.

set(sda_hdf5_debian_packages "libhdf5-dev pkg-config")
set(sda_fftw_debian_packages "libfftw3-dev pkg-config")
set(sda_torch_debian_packages "libtorch-dev")
set(sda_mpi_debian_packages "libopenmpi-dev openmpi-bin")
set(sda_dnnl_debian_packages "libdnnl-dev")

# sda_find_pkg_config_component(NAME PREFIX MODULE REQUIRED-OR-EMPTY): NAME through pkg-config MODULE.
# A required module is first looked up quietly, so that a missing one stops with the Debian
# package to install; the second, REQUIRED, call is what `cmake --trace` shows as required.
macro(sda_find_pkg_config_component name prefix module required)
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(${prefix} QUIET IMPORTED_TARGET GLOBAL ${module})
  endif()
  if("${required}" STREQUAL "REQUIRED")
    if(NOT ${prefix}_FOUND)
      message(FATAL_ERROR "sda::${name} is required here and needs the pkg-config module '${module}' "
                          "(Debian: apt-get install ${sda_${name}_debian_packages})")
    endif()
    find_package(PkgConfig REQUIRED)
    pkg_check_modules(${prefix} REQUIRED QUIET IMPORTED_TARGET GLOBAL ${module})
  endif()
  if(${prefix}_FOUND AND NOT TARGET sda::${name})
    add_library(sda::${name} INTERFACE IMPORTED)
    target_link_libraries(sda::${name} INTERFACE sda::sda PkgConfig::${prefix})
  endif()
  set(sda_${name}_FOUND ${${prefix}_FOUND})
endmacro()

macro(sda_find_component name)
  set(sda_component_required "")
  if("${ARGN}" STREQUAL "REQUIRED")
    set(sda_component_required REQUIRED)
  endif()
  if("${name}" STREQUAL "hdf5")
    sda_find_pkg_config_component(hdf5 SDA_HDF5 hdf5-serial "${sda_component_required}")
  elseif("${name}" STREQUAL "fftw")
    sda_find_pkg_config_component(fftw SDA_FFTW fftw3 "${sda_component_required}")
  elseif("${name}" STREQUAL "torch")
    # Debian's libtorch-dev is a CPU build; for CUDA, point CMake at a CUDA build of torch:
    # -DCMAKE_PREFIX_PATH=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
    find_package(Torch QUIET ${sda_component_required})
    if(TORCH_FOUND AND NOT TARGET sda::torch)
      add_library(sda::torch INTERFACE IMPORTED)
      target_link_libraries(sda::torch INTERFACE sda::sda ${TORCH_LIBRARIES})
    endif()
    set(sda_torch_FOUND ${TORCH_FOUND})
  elseif("${name}" STREQUAL "mpi")
    # As for pkg-config: a quiet look first, so that a missing MPI stops naming the Debian packages
    find_package(MPI QUIET COMPONENTS CXX)
    if("${sda_component_required}" STREQUAL "REQUIRED")
      if(NOT MPI_CXX_FOUND)
        message(FATAL_ERROR "sda::mpi is required here and needs MPI for C++, found by find_package(MPI) "
                            "(Debian: apt-get install ${sda_mpi_debian_packages})")
      endif()
      find_package(MPI REQUIRED QUIET COMPONENTS CXX)
    endif()
    if(MPI_CXX_FOUND AND NOT TARGET sda::mpi)
      add_library(sda::mpi INTERFACE IMPORTED)
      target_link_libraries(sda::mpi INTERFACE sda::sda MPI::MPI_CXX)
    endif()
    set(sda_mpi_FOUND ${MPI_CXX_FOUND})
  elseif("${name}" STREQUAL "dnnl")
    # Debian's oneDNN runs on OpenMP; sda calls it on one thread at a time (omp_set_num_threads),
    # so it links OpenMP's runtime library but does not compile with -fopenmp, which would turn on
    # Eigen's own OpenMP threads beside oneTBB's.
    find_package(dnnl CONFIG QUIET)
    find_package(OpenMP QUIET COMPONENTS CXX)
    if("${sda_component_required}" STREQUAL "REQUIRED")
      if(NOT dnnl_FOUND OR NOT OpenMP_CXX_FOUND)
        message(FATAL_ERROR "sda::dnnl is required here and needs oneDNN, found by find_package(dnnl), and "
                            "OpenMP (Debian: apt-get install ${sda_dnnl_debian_packages})")
      endif()
      find_package(dnnl CONFIG REQUIRED QUIET)
    endif()
    if(dnnl_FOUND AND OpenMP_CXX_FOUND AND NOT TARGET sda::dnnl)
      add_library(sda::dnnl INTERFACE IMPORTED)
      target_link_libraries(sda::dnnl INTERFACE sda::sda DNNL::dnnl ${OpenMP_CXX_LIBRARIES})
      target_compile_definitions(sda::dnnl INTERFACE SDA_WITH_DNNL=1)
    endif()
    if(TARGET sda::dnnl)
      set(sda_dnnl_FOUND TRUE)
    else()
      set(sda_dnnl_FOUND FALSE)
    endif()
  else()
    message(FATAL_ERROR "sda has no component '${name}' (it has hdf5, fftw, torch, mpi and dnnl)")
  endif()
endmacro()
