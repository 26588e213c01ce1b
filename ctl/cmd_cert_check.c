#include "cmd.h"
static int run_check(int argc, char **argv) { return 2; }
const struct ctl_command cmd_cert_check = { "cert", "check", "FILE", "x", "", run_check };
