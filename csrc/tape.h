// The tape's hot paths (apply, run_backward) written against the CPython API; see tape.cpp.
#pragma once

#include <Python.h>

namespace tapegrad::tape {

// Adds apply, run_backward and tape_register to the module. Returns -1 with an exception set on failure.
int add_to_module(PyObject* module);

}  // namespace tapegrad::tape
