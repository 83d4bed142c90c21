// swift-tools-version: 6.0
import PackageDescription

// One module per SmartOS part (docs/architecture.md), a C target for what Swift cannot call,
// and the `lumos` executable that only parses arguments and prints.

// Generic type metadata through direct accessor calls, not mangled names. A mangled name is
// resolved at its first use by scanning the protocol conformance records of the whole
// (static) binary, 0.1–0.4 ms per generic type with a Hashable key; `dtrace` paid about
// 1 ms of that before its first probe (docs/trace.md, "USDT start-up").
let metadataAccessors: [SwiftSetting] = [
    .unsafeFlags(["-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors"]),
]

let package = Package(
    name: "Lumos",
    products: [
        .executable(name: "lumos", targets: ["lumos"]),
        .executable(name: "lumos-init", targets: ["lumos-init"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // vmadmd's REST API (docs/daemon.md): HTTP/1.1 over a unix socket, or TLS over TCP.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        .target(
            name: "CLinux",
            linkerSettings: [.linkedLibrary("btrfsutil"), .linkedLibrary("seccomp")]
        ),
        .target(name: "LumosCore", dependencies: ["CLinux"], swiftSettings: metadataAccessors),
        .target(name: "Storage", dependencies: ["LumosCore", "CLinux"], swiftSettings: metadataAccessors),
        .target(name: "Images", dependencies: ["LumosCore", "Storage"], swiftSettings: metadataAccessors),
        .target(name: "Zones", dependencies: ["LumosCore", "Storage", "Images", "Net", "VM", "CLinux"], swiftSettings: metadataAccessors),
        .target(name: "Net", dependencies: ["LumosCore", "CLinux"], swiftSettings: metadataAccessors),
        .target(name: "Trace", dependencies: ["LumosCore", "CLinux"], swiftSettings: metadataAccessors),
        // Brand kvm (docs/vm.md): QEMU's command line, the accelerator probe, QMP, taps, and
        // the small guest builder.
        .target(name: "VM", dependencies: ["LumosCore", "Images", "Net", "CLinux"], swiftSettings: metadataAccessors),
        // vmadmd (docs/daemon.md): the REST API, autoboot and events over the same library
        // calls as the CLI. Each module adds its routes through `DaemonModule`.
        .target(
            name: "Daemon",
            dependencies: [
                "LumosCore", "Storage", "Images", "Zones", "Net", "VM",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: metadataAccessors
        ),
        // zlib (Debian zlib1g-dev): the deflate inside the heatmaps' PNGs.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // Cloud Analytics (docs/analytics.md): metrics, instrumentations as generated D programs
        // run by Trace, per-second values, PNG heatmaps, and vmadmd's `/ca` routes and page.
        .target(
            name: "Analytics",
            dependencies: [
                "LumosCore", "Trace", "Net", "Daemon", "CZlib",
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: metadataAccessors
        ),
        .executableTarget(
            name: "lumos",
            dependencies: [
                "LumosCore", "Storage", "Images", "Zones", "Net", "Trace", "VM", "Daemon", "Analytics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: metadataAccessors
        ),
        // PID 1 of zones without an init of their own; static so it runs inside any image
        // (exec'd from a descriptor opened on the host, see Sources/lumos-init/main.c).
        .executableTarget(
            name: "lumos-init",
            linkerSettings: [.unsafeFlags(["-static-executable", "-use-ld=lld", "-Xlinker", "--gc-sections"])]
        ),
        .testTarget(name: "LumosCoreTests", dependencies: ["LumosCore"]),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "LumosCore"]),
        .testTarget(name: "ImagesTests", dependencies: ["Images", "Storage", "LumosCore"]),
        .testTarget(name: "ZonesTests", dependencies: ["Zones", "Storage", "Images", "Net", "LumosCore"]),
        .testTarget(name: "NetTests", dependencies: ["Net", "LumosCore"]),
        .testTarget(name: "TraceTests", dependencies: ["Trace", "PostgresSupport", "LumosCore"]),
        .testTarget(name: "AnalyticsTests", dependencies: ["Analytics", "Trace", "Zones", "Net", "PostgresSupport", "LumosCore"]),
        // What TraceTests and AnalyticsTests share: a private PostgreSQL cluster under pgbench.
        .target(name: "PostgresSupport", dependencies: ["LumosCore"], path: "Tests/PostgresSupport"),
        .testTarget(name: "DaemonTests", dependencies: ["Daemon", "Zones", "Images", "Storage", "Net", "LumosCore"]),
        .testTarget(name: "VMTests", dependencies: ["VM", "VMTestSupport", "Zones", "Images", "Storage", "Net", "LumosCore", "CLinux"]),
        // What VMTests and bench/vm share: a DHCP server thread in a test namespace and the
        // guest network around it. Not part of any product.
        .target(name: "VMTestSupport", dependencies: ["VM", "Net", "LumosCore", "CLinux"], path: "Tests/VMTestSupport"),
        .executableTarget(name: "vm-bench", dependencies: ["VM", "VMTestSupport", "Net", "LumosCore"], path: "bench/vm"),
        // Attacks from inside real zones (docs/security.md); Resources/attack.c is the tenant's
        // toolbox, compiled static by the tests themselves.
        .testTarget(name: "SecurityTests", dependencies: ["Zones", "VM", "LumosCore"], exclude: ["Resources"]),
    ]
)
