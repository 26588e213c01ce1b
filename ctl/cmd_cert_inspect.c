#include "cmd.h"
static int run_inspect(int argc, char **argv) { return 2; }
const struct ctl_command cmd_cert_inspect = { "cert", "inspect", "FILE", "x", "", run_inspect };
