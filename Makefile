# Tessera build.
#
#   make              build build/bin/{tessera,tessera-miner,tessera-validator}
#   make test         install Debian dependencies if missing, build, run the suite
#   make test-asan    the same suite under AddressSanitizer + UBSan (build-asan/)
#   make demo         a whole local subnet on this machine
#   make bench        benchmarks (figures and the command that reproduces them; the lab's
#                     comparison only with BENCH_ARGS=b_lab, it takes hours)
#   make soak         the soak: a local subnet for 100 windows, resources and buckets flat (bench/soak.sh)
#   make fuzz         fuzz the untrusted-input decoders (FUZZ_SECONDS=600)
#   make deps         apt-get the Debian packages the project needs (no-op when present)
#
# CUDA=auto (default) uses nvcc when present, CUDA=0 never, CUDA=1 requires it.
# The binaries pick the CPU backend at run time when no GPU is present.

CUDA ?= auto
BUILD ?= build
SANITIZE ?=

CC := gcc
NVCC ?= nvcc
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(shell command -v $(NVCC) 2>/dev/null))
ifeq ($(CUDA_HOME),)
CUDA_HOME := /usr/local/cuda
endif

ifeq ($(CUDA),auto)
HAVE_NVCC := $(shell command -v $(NVCC) >/dev/null 2>&1 && echo 1)
USE_CUDA := $(if $(HAVE_NVCC),1,0)
else ifeq ($(CUDA),1)
HAVE_NVCC := $(shell command -v $(NVCC) >/dev/null 2>&1 && echo 1)
ifneq ($(HAVE_NVCC),1)
$(error CUDA=1 but nvcc was not found; install the CUDA toolkit or use CUDA=0)
endif
USE_CUDA := 1
else
USE_CUDA := 0
endif

WARN := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation -Wshadow -Wvla
CFLAGS_BASE := -std=gnu11 -O2 -g -fPIC -fopenmp -D_GNU_SOURCE $(WARN) -I. -I/usr/include/openblas
# Numerics that must agree bit for bit across nodes of one backend (codec,
# aggregation, scoring) are built without floating-point contraction.
CFLAGS_BASE += -ffp-contract=off
LDLIBS := -lsodium -lcurl -lcjson -lzstd -lonig -lopenblas -lm -lpthread -ldl
LDFLAGS := -fopenmp $(EXTRA_LDFLAGS)

ifeq ($(SANITIZE),1)
CFLAGS_BASE := $(filter-out -O2,$(CFLAGS_BASE)) -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
USE_CUDA := 0
endif

ifeq ($(USE_CUDA),1)
CFLAGS_BASE += -DTS_HAVE_CUDA
# Every kernel must compile for sm_90 with no register spills and no
# warnings: ptxas reports spills and local memory, and both fail the build.
NVCCFLAGS := -O2 -std=c++17 -I. -DTS_HAVE_CUDA -Xcompiler -fPIC,-Wall \
  -Xptxas -warn-spills,-warn-lmem-usage,-Werror -Werror all-warnings \
  -gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=sm_90 \
  -gencode=arch=compute_90,code=compute_90
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcublasLt -lcudart_static -lrt -lpthread -ldl
endif

CFLAGS := $(CFLAGS_BASE) $(EXTRA_CFLAGS)

# Library modules: every .c in these folders goes into libtessera.a.
MODULES := common yuma data model kernels codec storage chain gauntlet node lab
LIB_SRCS := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
CU_SRCS := $(if $(filter 1,$(USE_CUDA)),$(foreach m,$(MODULES),$(wildcard $(m)/*.cu)))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LIB := $(BUILD)/lib/libtessera.a
# The CUDA code is a shared library the binaries dlopen on first use.
CUDA_LIB := $(if $(CU_SRCS),$(BUILD)/lib/libtessera_cuda.so)

TOOL_SRCS := $(wildcard tools/*.c)
MINER_SRCS := $(wildcard miner/*.c)
VALIDATOR_SRCS := $(wildcard validator/*.c)
BINS := $(BUILD)/bin/tessera $(BUILD)/bin/tessera-miner $(BUILD)/bin/tessera-validator

TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
# the kernel test drivers (tests/backend_*.c), run by tests/t_backend_ops.sh
# (emulator) and bench/gpu.sh (a real GPU)
TEST_BINS += $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/backend_*.c))
TEST_HARNESS := $(BUILD)/obj/tests/harness.o

BENCH_SRCS := $(wildcard bench/bench_*.c)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

.SECONDARY:
.PHONY: all deps test test-asan check demo bench soak fuzz clean tests benches corpus
all: $(BINS) $(CUDA_LIB)

deps:
	@bash tools/deps.sh

# Objects are rebuilt when the flags change (CUDA=0 vs 1, SANITIZE, ...).
FLAGS_STAMP := $(BUILD)/.flags
FLAGS_NOW := $(CC) $(CFLAGS) | $(LDLIBS) | $(USE_CUDA)
$(shell mkdir -p $(BUILD); [ "$$(cat $(FLAGS_STAMP) 2>/dev/null)" = '$(FLAGS_NOW)' ] || echo '$(FLAGS_NOW)' > $(FLAGS_STAMP))

$(BUILD)/obj/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(BUILD)/lib/libtessera_cuda.so: $(CU_SRCS:%.cu=$(BUILD)/obj/%.cu.o)
	@mkdir -p $(dir $@)
	g++ -shared -o $@ $^ $(CUDA_LIBS)

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/tessera: $(TOOL_SRCS:%.c=$(BUILD)/obj/%.o) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/tessera-miner: $(MINER_SRCS:%.c=$(BUILD)/obj/%.o) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bin/tessera-validator: $(VALIDATOR_SRCS:%.c=$(BUILD)/obj/%.o) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_HARNESS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The device emulator (tests/cudaemu/): the kernels' .cu source built with g++
# into build/lib/libtessera_cudaemu.so, and the emulator's own tests.
include tests/cudaemu/cudaemu.mk

tests: $(BINS) $(CUDA_LIB) $(TEST_BINS) $(CUDAEMU_TARGETS)
benches: $(BINS) $(CUDA_LIB) $(BENCH_BINS)

# The demo corpus is built at set-up time from text Debian packages install.
corpus: $(BINS)
	@bash tools/make_corpus.sh $(BUILD)/corpus

test: deps
	@$(MAKE) --no-print-directory tests
	@BUILD=$(BUILD) bash tests/run.sh

check: test

test-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan SANITIZE=1 tests
	@BUILD=build-asan TESSERA_SANITIZED=1 bash tests/run.sh

demo: deps
	@$(MAKE) --no-print-directory all corpus
	@BUILD=$(BUILD) bash tools/demo.sh $(DEMO_ARGS)

bench: deps
	@$(MAKE) --no-print-directory benches corpus
	@BUILD=$(BUILD) bash bench/run.sh $(BENCH_ARGS)

soak: deps
	@$(MAKE) --no-print-directory all corpus
	@BUILD=$(BUILD) bash bench/soak.sh

fuzz: deps
	@bash tests/fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
