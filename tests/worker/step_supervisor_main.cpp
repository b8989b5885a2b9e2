// The step supervisor alone, for step_runner_test: what td-worker runs when spawned as
// td-step-supervisor (worker/step_supervisor.h), without the rest of td-worker.
#include "worker/step_supervisor.h"

int main(int argc, char** argv) { return td::worker::stepSupervisorMain(argc, argv); }
