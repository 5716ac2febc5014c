// The program's child processes (the demo's Mosquitto) come from the code the test harness
// uses too (src/process/child_process.h): its own process group, stopped with the group on
// destruction so nothing is left running.
#pragma once

#include "process/child_process.h"

namespace dataflow::app {

using process::ChildProcess;
using process::FreeLoopbackPort;
using process::LoopbackPortAnswers;

}  // namespace dataflow::app
