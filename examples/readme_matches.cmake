# Fails unless README.md contains SOURCE (examples/quickstart.cpp) verbatim,
# from its first #include on, so the README's example cannot rot.
file(READ ${README} readme)
file(READ ${SOURCE} source)
string(FIND "${source}" "#include <sda/sda.hpp>" start)
string(SUBSTRING "${source}" ${start} -1 code)
string(FIND "${readme}" "${code}" found)
if(found EQUAL -1)
  message(FATAL_ERROR "README.md does not quote ${SOURCE} verbatim (from its first #include); update the README")
endif()
