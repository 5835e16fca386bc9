/* harness.c - runner for TEST() functions; see harness.h. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"

#define MAX_TESTS 1024
static struct {
    const char *name;
    th_fn fn;
} tests[MAX_TESTS];
static int ntests;
static int cur_failed;
static int cur_skipped;
static char cur_tmp[512];
static int report_fd = -1;

void th_register(const char *name, th_fn fn) {
    if (ntests < MAX_TESTS) tests[ntests++] = (typeof(tests[0])){name, fn};
}

static void report(const char *s) {
    if (report_fd >= 0) {
        ssize_t w = write(report_fd, s, strlen(s));
        (void)w;
    } else {
        fputs(s, stdout);
    }
}

void th_fail(const char *file, int line, const char *fmt, ...) {
    char msg[1024], line_buf[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(line_buf, sizeof line_buf, "    %s:%d: %s\n", file, line, msg);
    report(line_buf);
    cur_failed++;
}

void th_skip(const char *fmt, ...) {
    char msg[1024], line_buf[1100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(line_buf, sizeof line_buf, "    skipped: %s\n", msg);
    report(line_buf);
    cur_skipped = 1;
}

int th_failed(void) { return cur_failed; }

const char *th_build_dir(void) {
    const char *b = getenv("BUILD");
    return b && *b ? b : "build";
}

const char *th_tmpdir(void) {
    if (!cur_tmp[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(cur_tmp, sizeof cur_tmp, "%s/tessera-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(cur_tmp)) {
            perror("mkdtemp");
            abort();
        }
    }
    return cur_tmp;
}

int th_run(const char *cmd, char **out) {
    if (out) *out = NULL;
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (cap - n < 1024) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
    }
    if (buf) buf[n] = 0;
    int st = pclose(p);
    if (out) *out = buf;
    else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int th_have_python(const char *modules) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c 'import %s' >/dev/null 2>&1", modules);
    return access("/usr/bin/python3", X_OK) == 0 && th_run(cmd, NULL) == 0;
}

static void rm_tree(const char *dir) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) { /* best effort */ }
}

/* Child writes its detail lines to a pipe; the exit status says the verdict:
 * 0 passed, 1 failed, 2 skipped, anything else crashed. */
static int run_one(int i, char *detail, size_t cap, int *crashed) {
    int pfd[2];
    *crashed = 0;
    if (pipe(pfd)) return 1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        report_fd = pfd[1];
        const char *t = getenv("TH_TIMEOUT");
        alarm(t ? (unsigned)atoi(t) : 900);
        tests[i].fn();
        int failed = cur_failed;
        if (cur_tmp[0] && (!failed || !getenv("TH_KEEP"))) rm_tree(cur_tmp);
        fflush(stdout);
        _exit(failed ? 1 : cur_skipped ? 2 : 0);
    }
    close(pfd[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(pfd[0], detail + n, cap - 1 - n)) > 0) n += (size_t)r;
    /* drain anything beyond the buffer */
    char sink[256];
    while (read(pfd[0], sink, sizeof sink) > 0) {}
    detail[n] = 0;
    close(pfd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(st) && WEXITSTATUS(st) <= 2) return WEXITSTATUS(st);
    *crashed = WIFSIGNALED(st) ? WTERMSIG(st) : -1;
    return 1;
}

int main(int argc, char **argv) {
    int passed = 0, failed = 0, skipped = 0;
    const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    int nofork = getenv("TH_NOFORK") != NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < ntests; i++) {
        if (argc > 1) {
            int hit = 0;
            for (int a = 1; a < argc; a++) hit |= strstr(tests[i].name, argv[a]) != NULL;
            if (!hit) continue;
        }
        static char detail[1 << 16];
        int verdict, crashed = 0;
        if (nofork) {
            cur_failed = 0;
            cur_skipped = 0;
            cur_tmp[0] = 0;
            detail[0] = 0;
            tests[i].fn();
            verdict = cur_failed ? 1 : cur_skipped ? 2 : 0;
            if (cur_tmp[0] && !cur_failed) rm_tree(cur_tmp);
        } else {
            verdict = run_one(i, detail, sizeof detail, &crashed);
        }
        const char *word = verdict == 0 ? "ok  " : verdict == 2 ? "skip" : "FAIL";
        printf("%s %s/%s\n", word, prog, tests[i].name);
        if (crashed > 0) printf("    crashed with signal %d (%s)\n", crashed, strsignal(crashed));
        else if (crashed < 0) printf("    exited abnormally\n");
        if (detail[0] && verdict != 0) fputs(detail, stdout);
        if (verdict == 0) passed++;
        else if (verdict == 2) skipped++;
        else failed++;
    }
    printf("# %s: %d passed, %d failed, %d skipped\n", prog, passed, failed, skipped);
    return failed ? 1 : 0;
}
