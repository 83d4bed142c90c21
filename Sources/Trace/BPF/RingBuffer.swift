import CLinux
import Glibc
import LumosCore

/// The consumer side of a BPF_MAP_TYPE_RINGBUF map (kernel/bpf/ringbuf.c): a read-write
/// page with the consumer position, then a read-only page with the producer position
/// followed by the data area mapped twice so records never wrap.
public final class RingBuffer: @unchecked Sendable {
    public let map: BPFMap
    let consumer: UnsafeMutableRawPointer
    let producer: UnsafeMutableRawPointer
    let pageSize: Int
    let size: Int

    public init(map: BPFMap) throws {
        self.map = map
        size = map.maxEntries
        pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard let c = mmap(nil, pageSize, PROT_READ | PROT_WRITE, MAP_SHARED, map.fd, 0), c != MAP_FAILED else {
            throw Errno(errno, "mmap", "ring buffer consumer page")
        }
        guard let p = mmap(nil, pageSize + 2 * size, PROT_READ, MAP_SHARED, map.fd, off_t(pageSize)), p != MAP_FAILED else {
            let e = errno
            munmap(c, pageSize)
            throw Errno(e, "mmap", "ring buffer data")
        }
        consumer = c
        producer = p
    }

    deinit {
        munmap(consumer, pageSize)
        munmap(producer, pageSize + 2 * size)
    }

    /// Waits up to `timeoutMs` for data (returns early on a signal).
    public func wait(timeoutMs: Int32) {
        var pfd = pollfd(fd: map.fd, events: Int16(POLLIN), revents: 0)
        _ = poll(&pfd, 1, timeoutMs)
    }

    /// Hands every committed record to `body`, in order, and releases them.
    @discardableResult
    public func drain(_ body: (UnsafeRawBufferPointer) -> Void) -> Int {
        let consPtr = consumer.assumingMemoryBound(to: UInt64.self)
        let prodPtr = producer.assumingMemoryBound(to: UInt64.self)
        var cons = clinux_load_acquire_u64(consPtr)
        let data = producer + pageSize
        var count = 0
        while true {
            let prod = clinux_load_acquire_u64(prodPtr)
            if cons >= prod { break }
            let header = data + Int(cons & UInt64(size - 1))
            let lenWord = clinux_load_acquire_u32(header.assumingMemoryBound(to: UInt32.self))
            let busy: UInt32 = 1 << 31, discard: UInt32 = 1 << 30
            if lenWord & busy != 0 { break }
            let len = Int(lenWord & ~(busy | discard))
            if lenWord & discard == 0 {
                body(UnsafeRawBufferPointer(start: header + 8, count: len))
                count += 1
            }
            cons += UInt64((len + 8 + 7) & ~7)
            clinux_store_release_u64(consPtr, cons)
        }
        return count
    }
}
