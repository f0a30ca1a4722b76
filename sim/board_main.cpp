// The simulated board: the top-level gateware under Verilator, behind a pseudo-terminal.
//
// sim/board.py builds this file together with the Verilog of the top level
// (`verilator --cc --exe --build`) and a generated header, board_top.h, that
// includes the model's class header and names its ports:
//
//   #define VTOP        the model class (Vnf_sim_board: sim/board.py wraps the top level
//                       so that its reset comes from a power-on counter inside the model,
//                       high for the first 4 cycles)
//   #define NF_CLK      clock input
//   #define NF_RX       UART input (the host's TX)
//   #define NF_TX       UART output (the host's RX)
//   #define NF_BUSY     optional output: high while the core has work (omitted when absent)
//
// No Python and no cocotb run per cycle. The program opens a pseudo-terminal,
// puts it in raw mode and prints the slave's path as the first line on stdout;
// any serial program (pyserial, `neurofabric --device serial:PATH`, picocom)
// can then open that path. Bytes the host writes are bit-banged onto the UART
// input at `--divisor` clock cycles per bit (8N1, LSB first); the UART output is
// sampled at bit centres into bytes that are written back to the pty. The
// baud rate the host sets on the pty does not matter: the line runs at the
// simulated clock's pace.
//
// The clock runs as fast as the model allows while there is work: bytes to
// send or being received, or the core busy (NF_BUSY, or without it any UART
// activity in the last `--quiet-cycles` cycles). Otherwise the board sleeps in
// poll() until the host writes, so an idle board costs no CPU.
//
// It exits cleanly on SIGTERM or SIGINT, when its parent dies (--exit-with-parent,
// Linux), or when no program has had the pty open for --hangup-exit seconds
// after a first one did (0, the default, never). A summary (cycles, bytes,
// cycles per second) goes to stderr at exit.

#include "board_top.h"

#include <verilated.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

namespace {

volatile sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Options {
    unsigned divisor = 4;             // clock cycles per UART bit
    double hangup_exit_s = 0.0;       // exit after this long without a client (0: never)
    uint64_t quiet_cycles = 0;        // idle after this many cycles without UART activity (0: default)
    bool exit_with_parent = false;
    bool trace = false;               // every byte with its cycle, on stderr
    unsigned reset_cycles = 4;        // the wrapper's power-on reset (sim/board.py)
};

[[noreturn]] void usage(const char* argv0, const char* problem) {
    std::fprintf(stderr,
                 "%s: %s\n"
                 "usage: %s [--divisor N] [--hangup-exit SECONDS] [--quiet-cycles N] [--exit-with-parent] [--trace]\n",
                 argv0, problem, argv0);
    std::exit(2);
}

Options parse(int argc, char** argv) {
    Options opt;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) usage(argv[0], ("missing value after " + arg).c_str());
            return argv[++i];
        };
        if (arg == "--divisor") {
            long v = std::strtol(value(), nullptr, 10);
            if (v < 2 || v > 1000000) usage(argv[0], "--divisor must be 2..1000000");
            opt.divisor = static_cast<unsigned>(v);
        } else if (arg == "--hangup-exit") {
            opt.hangup_exit_s = std::strtod(value(), nullptr);
        } else if (arg == "--quiet-cycles") {
            opt.quiet_cycles = std::strtoull(value(), nullptr, 10);
        } else if (arg == "--exit-with-parent") {
            opt.exit_with_parent = true;
        } else if (arg == "--trace") {
            opt.trace = true;
        } else if (arg.rfind("+verilator", 0) == 0) {
            // Verilator's own run-time options pass through.
        } else {
            usage(argv[0], ("unknown option " + arg).c_str());
        }
    }
    return opt;
}

// Host -> board: bytes from the pty, bit-banged onto the UART input.
struct LineDriver {
    unsigned divisor;
    std::deque<uint8_t> queue;
    uint32_t shift = 0;
    unsigned bits_left = 0;
    unsigned timer = 0;

    bool active() const { return bits_left != 0 || !queue.empty(); }

    // The level of the line for the coming clock cycle.
    uint8_t level() {
        if (bits_left == 0) {
            if (queue.empty()) return 1;
            // Start bit (0), eight data bits LSB first, stop bit (1).
            shift = (static_cast<uint32_t>(queue.front()) << 1) | (1u << 9);
            queue.pop_front();
            bits_left = 10;
            timer = divisor;
        }
        uint8_t bit = shift & 1u;
        if (--timer == 0) {
            shift >>= 1;
            --bits_left;
            timer = divisor;
        }
        return bit;
    }
};

// Board -> host: the UART output sampled at bit centres into bytes.
struct LineSampler {
    unsigned divisor;
    enum { IDLE, START, DATA, STOP } state = IDLE;
    unsigned timer = 0;
    unsigned bit = 0;
    uint8_t shift = 0;
    uint64_t framing_errors = 0;

    bool active() const { return state != IDLE; }

    // Feed the line's level after a clock edge; returns true with `out` set when a byte completes.
    bool sample(uint8_t line, uint8_t& out) {
        switch (state) {
        case IDLE:
            if (!line) {
                state = START;
                timer = divisor / 2;
            }
            return false;
        case START:
            if (--timer == 0) {
                if (line) {
                    state = IDLE;  // a glitch, not a start bit
                } else {
                    state = DATA;
                    timer = divisor;
                    bit = 0;
                    shift = 0;
                }
            }
            return false;
        case DATA:
            if (--timer == 0) {
                shift |= static_cast<uint8_t>((line & 1u) << bit);
                timer = divisor;
                if (++bit == 8) state = STOP;
            }
            return false;
        case STOP:
            if (--timer == 0) {
                state = IDLE;
                if (line) {
                    out = shift;
                    return true;
                }
                ++framing_errors;
            }
            return false;
        }
        return false;
    }
};

int open_pty(std::string& slave_path) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        std::perror("simulated board: cannot open a pseudo-terminal");
        std::exit(1);
    }
    const char* name = ptsname(master);
    if (!name) {
        std::perror("simulated board: ptsname");
        std::exit(1);
    }
    slave_path = name;
    // Raw mode (no echo, no line editing, every byte value passes) on the
    // slave side; the setting stays with the pty after this fd is closed.
    int slave = open(name, O_RDWR | O_NOCTTY);
    if (slave >= 0) {
        struct termios tio;
        if (tcgetattr(slave, &tio) == 0) {
            cfmakeraw(&tio);
            tcsetattr(slave, TCSANOW, &tio);
        }
        close(slave);
    }
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    return master;
}

}  // namespace

int main(int argc, char** argv) {
    Options opt = parse(argc, argv);
#ifdef __linux__
    if (opt.exit_with_parent) {
        pid_t parent = getppid();
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) return 0;  // the parent died before prctl
    }
#endif
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);

    const std::unique_ptr<VerilatedContext> context{new VerilatedContext};
    context->commandArgs(argc, argv);
    const std::unique_ptr<VTOP> top{new VTOP{context.get(), "board"}};

    std::string slave_path;
    int master = open_pty(slave_path);
    std::printf("%s\n", slave_path.c_str());
    std::fflush(stdout);

#ifdef NF_BUSY
    // Gaps in the UART traffic while the core is idle are short: a few bytes' time.
    const uint64_t quiet_cycles = opt.quiet_cycles ? opt.quiet_cycles : 64ull * opt.divisor;
#else
    // Without a busy output, a long step (tens of thousands of cycles) must not look idle.
    const uint64_t quiet_cycles = opt.quiet_cycles ? opt.quiet_cycles : 2000000ull;
#endif

    LineDriver driver{opt.divisor};
    LineSampler sampler{opt.divisor};
    std::vector<uint8_t> to_host;
    std::vector<uint8_t> buffer(65536);

    uint64_t cycle = 0, last_activity = 0;
    uint64_t bytes_in = 0, bytes_out = 0, bytes_lost = 0;
    bool client_seen = false;
    bool hung_up = true;
    Clock::time_point start = Clock::now(), hangup_since = start;
    double busy_s = 0.0;

    top->NF_CLK = 0;
    top->NF_RX = 1;
    top->eval();

    auto tick = [&]() {
        top->NF_RX = cycle < opt.reset_cycles + 16 ? 1 : driver.level();
        top->NF_CLK = 0;
        top->eval();
        top->NF_CLK = 1;
        top->eval();
        ++cycle;
        uint8_t byte;
        bool done = sampler.sample(top->NF_TX, byte);
        if (done) {
            to_host.push_back(byte);
            ++bytes_out;
            if (opt.trace) std::fprintf(stderr, "cycle %llu: board -> host 0x%02x\n", (unsigned long long)cycle, byte);
        }
        return done;
    };

    auto flush = [&]() {
        size_t sent = 0;
        while (sent < to_host.size()) {
            ssize_t n = write(master, to_host.data() + sent, to_host.size() - sent);
            if (n > 0) {
                sent += static_cast<size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) break;  // the host reads slowly: keep the rest
            // EIO: nobody has the pty open. A real UART with no listener loses its bytes too.
            bytes_lost += to_host.size() - sent;
            sent = to_host.size();
        }
        to_host.erase(to_host.begin(), to_host.begin() + static_cast<std::ptrdiff_t>(sent));
    };

    // The reset, then an idle line long enough for the synchronisers: a byte
    // the host wrote before the board started must not begin inside the reset.
    while (cycle < opt.reset_cycles + 16) tick();

    while (!g_stop) {
        // -- host input -------------------------------------------------------------
        if (driver.queue.size() < buffer.size()) {
            ssize_t n = read(master, buffer.data(), buffer.size());
            if (n > 0) {
                if (opt.trace)
                    for (ssize_t k = 0; k < n; ++k)
                        std::fprintf(stderr, "cycle %llu: host -> board 0x%02x\n", (unsigned long long)cycle,
                                     buffer[k]);
                driver.queue.insert(driver.queue.end(), buffer.begin(), buffer.begin() + n);
                bytes_in += static_cast<uint64_t>(n);
                client_seen = true;
                hung_up = false;
            } else if (n < 0 && errno == EIO) {
                if (!hung_up) hangup_since = Clock::now();
                hung_up = true;
            } else if (n < 0 && errno == EAGAIN) {
                hung_up = false;
                client_seen = true;
            }
        }
        if (!to_host.empty()) flush();

        bool work = driver.active() || sampler.active() || cycle - last_activity < quiet_cycles;
#ifdef NF_BUSY
        work = work || top->NF_BUSY;
#endif
        if (!work) {
            if (hung_up) {
                if (client_seen && opt.hangup_exit_s > 0 && seconds_since(hangup_since) > opt.hangup_exit_s) {
                    std::fprintf(stderr, "simulated board: nobody has had %s open for %.0f s, exiting\n",
                                 slave_path.c_str(), opt.hangup_exit_s);
                    break;
                }
                // poll() reports a hung-up master at once: sleep instead of spinning.
                usleep(20000);
            } else {
                struct pollfd pfd = {master, POLLIN, 0};
                poll(&pfd, 1, to_host.empty() ? 50 : 2);
                if (pfd.revents & POLLHUP) {
                    if (!hung_up) hangup_since = Clock::now();
                    hung_up = true;
                }
            }
            continue;
        }

        // -- a batch of cycles, cut short when a frame delimiter (0x00) goes out ------
        Clock::time_point batch_start = Clock::now();
        for (int i = 0; i < 4096; ++i) {
            bool line_busy = driver.active() || sampler.active();
            bool byte_out = tick();
            if (line_busy || sampler.active()) last_activity = cycle;
            if (byte_out && to_host.back() == 0x00) break;
            if (driver.queue.empty() && !line_busy && !sampler.active() &&
                cycle - last_activity >= quiet_cycles) {
#ifdef NF_BUSY
                if (!top->NF_BUSY) break;
#else
                break;
#endif
            }
        }
        busy_s += seconds_since(batch_start);
    }

    top->final();
    close(master);
    double wall = seconds_since(start);
    std::fprintf(stderr,
                 "simulated board: %llu cycles in %.2f s running (%.2f s wall), %.3g cycles/s; %llu bytes in, "
                 "%llu bytes out, %llu lost without a listener, %llu framing errors\n",
                 static_cast<unsigned long long>(cycle), busy_s, wall, busy_s > 0 ? cycle / busy_s : 0.0,
                 static_cast<unsigned long long>(bytes_in), static_cast<unsigned long long>(bytes_out),
                 static_cast<unsigned long long>(bytes_lost),
                 static_cast<unsigned long long>(sampler.framing_errors));
    return 0;
}
