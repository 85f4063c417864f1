import Glibc

/// Blocks SIGPIPE for the calling thread. Plain writes use `MSG_NOSIGNAL`, but OpenSSL writes
/// with plain `write(2)`, and a write to a socket the server has reset would otherwise raise
/// SIGPIPE and kill the process; with the signal blocked on the owner thread the write fails with
/// EPIPE instead (the pending signal is never delivered). Idempotent and cheap.
func blockSIGPIPEOnCurrentThread() {
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGPIPE)
    pthread_sigmask(SIG_BLOCK, &set, nil)
}
