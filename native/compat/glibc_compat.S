// Binds the glibc functions whose default version is newer than 2.28 to their older version, so
// that the addon built here loads on glibc 2.28 (RHEL 8, Ubuntu 20.04's 2.31, Node 20's own
// floor). glibc 2.29 gave exp and pow new versions, and 2.34 moved libpthread, libdl and librt
// into libc under new versions; the old versions are still exported, so binding to them changes
// nothing where the new ones exist. The link wraps each name listed here (CMakeLists.txt reads
// the COMPAT lines), so the references in the static libstdc++ and CUDA runtime come here too.
// test/package.test.ts checks the result with objdump -T.

#if defined(__x86_64__)
#define BASE GLIBC_2.2.5
#define DLMOPEN_VERSION GLIBC_2.3.4
.macro compat name, version
  .globl __wrap_\name
  .hidden __wrap_\name
  .type __wrap_\name, @function
__wrap_\name:
  jmp \name@PLT
  .symver \name, \name@\version
.endm
#elif defined(__aarch64__)
#define BASE GLIBC_2.17
#define DLMOPEN_VERSION GLIBC_2.17
.macro compat name, version
  .globl __wrap_\name
  .hidden __wrap_\name
  .type __wrap_\name, %function
__wrap_\name:
  b \name
  .symver \name, \name@\version
.endm
#else
#error "glibc_compat.S knows x86_64 and aarch64"
#endif

#define COMPAT(name) compat name, BASE
#define COMPAT_AT(name, version) compat name, version

.text
COMPAT(exp)
COMPAT(pow)
COMPAT(dlclose)
COMPAT(dlerror)
COMPAT_AT(dlmopen, DLMOPEN_VERSION)
COMPAT(dlopen)
COMPAT(dlsym)
COMPAT(dlvsym)
COMPAT(pthread_condattr_setpshared)
COMPAT(pthread_create)
COMPAT(pthread_detach)
COMPAT(pthread_getspecific)
COMPAT(pthread_join)
COMPAT(pthread_key_create)
COMPAT(pthread_key_delete)
COMPAT(pthread_kill)
COMPAT(pthread_mutexattr_destroy)
COMPAT(pthread_mutexattr_init)
COMPAT(pthread_mutexattr_setpshared)
COMPAT(pthread_mutexattr_settype)
COMPAT(pthread_mutex_trylock)
COMPAT(pthread_once)
COMPAT(pthread_rwlockattr_destroy)
COMPAT(pthread_rwlockattr_init)
COMPAT(pthread_rwlockattr_setpshared)
COMPAT(pthread_rwlock_destroy)
COMPAT(pthread_rwlock_init)
COMPAT(pthread_rwlock_rdlock)
COMPAT(pthread_rwlock_timedrdlock)
COMPAT(pthread_rwlock_timedwrlock)
COMPAT(pthread_rwlock_tryrdlock)
COMPAT(pthread_rwlock_trywrlock)
COMPAT(pthread_rwlock_unlock)
COMPAT(pthread_rwlock_wrlock)
COMPAT(pthread_setspecific)
COMPAT(pthread_spin_destroy)
COMPAT(pthread_spin_init)
COMPAT(pthread_spin_lock)
COMPAT(pthread_spin_trylock)
COMPAT(pthread_spin_unlock)
COMPAT(__pthread_key_create)
COMPAT(sem_destroy)
COMPAT(sem_init)
COMPAT(sem_post)
COMPAT(sem_timedwait)
COMPAT(sem_trywait)
COMPAT(sem_wait)
COMPAT(shm_open)
COMPAT(shm_unlink)

// The static libstdc++ reads glibc 2.32's __libc_single_threaded to skip atomics in a process
// with one thread; 0 (always take the atomic path) is correct everywhere.
.data
.globl __wrap___libc_single_threaded
.hidden __wrap___libc_single_threaded
__wrap___libc_single_threaded:
  .byte 0

.section .note.GNU-stack,"",%progbits
