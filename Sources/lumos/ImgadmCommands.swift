import ArgumentParser
import Foundation
import Glibc
import Images
import LumosCore
import VM
import Zones

func openImages(_ root: StateRoot) throws -> ImageStore {
    let store = ImageStore(root: root, datasets: try PoolDatasets.open(root: root))
    try store.recover()
    return store
}

/// `lumos img ...` / `imgadm ...`: images as SmartOS imgadm(8) manages them.
struct ImgadmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: CLI.commandName("img", alias: "imgadm"),
        abstract: "Import, build, list and remove images (imgadm).",
        subcommands: [Import.self, Install.self, List.self, Get.self, Delete.self, Create.self, Build.self]
    )

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Install an image from a local manifest and file (sha1 and size are checked).")
        @OptionGroup var global: GlobalOptions
        @Option(name: .short, help: "IMGAPI manifest (JSON).") var m: String
        @Option(name: .short, help: "The image file.") var f: String
        @Flag(name: .short, help: "Quiet: no progress bar.") var q = false
        func run() throws {
            let image = try openImages(global.stateRoot).importImage(manifest: m, file: f, progress: !q && isatty(2) == 1)
            print("Imported image \(image.uuid) (\(image.name)@\(image.version))")
        }
    }

    /// imgadm(8)'s name for importing from local files.
    struct Install: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Same as import -m MANIFEST -f FILE (imgadm install).")
        @OptionGroup var global: GlobalOptions
        @Option(name: .short, help: "IMGAPI manifest (JSON).") var m: String
        @Option(name: .short, help: "The image file.") var f: String
        @Flag(name: .short, help: "Quiet: no progress bar.") var q = false
        func run() throws {
            let image = try openImages(global.stateRoot).importImage(manifest: m, file: f, progress: !q && isatty(2) == 1)
            print("Installed image \(image.uuid) (\(image.name)@\(image.version))")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List installed images (columns uuid,name,version,os,type,pub).")
        @OptionGroup var global: GlobalOptions
        @Flag(name: .short, help: "JSON output.") var j = false
        @Flag(name: .customShort("H"), help: "No header.") var noHeader = false
        @Option(name: .short, help: "Columns: uuid,name,version,os,type,pub,published_at,description,zpool,...") var o: String?
        func run() throws {
            let images = try openImages(global.stateRoot).list().sorted {
                ($0.manifest.publishedAt ?? "", $0.manifest.name) < ($1.manifest.publishedAt ?? "", $1.manifest.name)
            }
            if j {
                print(JSONValue.array(images.map(\.json)).serialized())
                return
            }
            let cols = o.map { $0.split(separator: ",").map(String.init) } ?? ImageStore.defaultColumns
            var table = Table(columns: cols)
            for img in images { table.add(cols.map { ImageStore.column(img, $0) }) }
            print(table.render(header: !noHeader), terminator: "")
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print an installed image's manifest (JSON).")
        @OptionGroup var global: GlobalOptions
        @Argument var uuid: String
        func run() throws {
            let img = try openImages(global.stateRoot).get(uuid)
            var o = img.json.objectValue ?? [:]
            o["clones"] = .number(Double(TenantStore(root: global.stateRoot).all().filter { $0.imageUUID == img.manifest.uuid }.count))
            print(JSONValue.object(o).serialized())
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an installed image (refused while VMs use it).")
        @OptionGroup var global: GlobalOptions
        @Argument var uuid: String
        func run() throws {
            let id = uuid.lowercased()
            let users = TenantStore(root: global.stateRoot).all().filter { $0.imageUUID == id }.map(\.uuid)
            try openImages(global.stateRoot).delete(id, users: users)
            print("Deleted image \(id)")
        }
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make an image (manifest + compressed file) from a stopped VM.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .short, help: "Compression: gzip, bzip2, xz, zstd or none.") var c = "gzip"
        @Option(name: .short, help: "Output path prefix (default ./NAME-VERSION).") var o: String?
        @Flag(name: .short, help: "Also install the new image on this host.") var i = false
        @Argument var uuid: String
        @Argument(help: "Manifest fields: name=NAME version=VERSION [description=...].") var fields: [String] = []
        func run() throws {
            var given: [String: String] = [:]
            for f in fields {
                guard let eq = f.firstIndex(of: "=") else { throw LumosError.invalid("create: \"\(f)\" is not field=value (e.g. name=web version=1.0)") }
                given[String(f[..<eq])] = String(f[f.index(after: eq)...])
            }
            guard let name = given["name"], let version = given["version"] else {
                throw LumosError.invalid("create: name=NAME and version=VERSION are required")
            }
            let v = try openVmadm(global.stateRoot)
            let id = try v.store.resolve(uuid)
            let out = try v.createImage(from: id, name: name, version: version, description: given["description"],
                                        compression: c, prefix: o ?? "./\(name)-\(version)")
            print("Image \(out.manifest.uuid) (\(name)@\(version)) saved to \"\(out.manifestPath)\" and \"\(out.filePath)\"")
            if v.images.isVolumeImage(out.manifest.uuid) {
                print("Installed image \(out.manifest.uuid) (\(name)@\(version)), a zvol image of the VM's boot disk")
            } else if i {
                try v.images.importImage(manifest: out.manifestPath, file: out.filePath)
                print("Imported image \(out.manifest.uuid) (\(name)@\(version))")
            }
        }
    }

    struct Build: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Build an image locally, no image server needed.",
                                                        subcommands: [Busybox.self, Debian.self, SmallGuestBuild.self, DebianGuestBuild.self])

        struct Busybox: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "A tiny image from Debian's busybox-static (seconds).")
            @OptionGroup var global: GlobalOptions
            @Option(name: .long, help: "Image name.") var name = "busybox"
            @Option(name: .long, help: "Image version (default: busybox's).") var version: String?
            @Option(name: .short, help: "Also keep the manifest and file in this directory.") var o: String?
            func run() throws {
                let store = try openImages(global.stateRoot)
                let m = try store.installBuilt(name: name, version: version ?? BusyboxImage.version(),
                                               description: "BusyBox userland from Debian's busybox-static", keepFilesIn: o) {
                    try BusyboxImage.build(into: $0)
                }
                print("Imported image \(m.uuid) (\(m.name)@\(m.version))")
            }
        }

        /// A zvol image for kvm VMs that boots from its own disk (docs/vm.md, "The small guest as an image").
        struct SmallGuestBuild: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "small-guest",
                abstract: "A small kvm guest (Debian's cloud kernel, busybox, DHCP) as a zvol image that boots from its disk.")
            @OptionGroup var global: GlobalOptions
            @Option(name: .long, help: "Image name.") var name = "small-guest"
            @Option(name: .long, help: "Image version (default: today, YYYYMMDD).") var version: String?
            @Option(name: .long, help: "Disk size in MiB (image_size).") var size = SmallGuestImage.defaultImageMiB
            @Option(name: .short, help: "Also keep the manifest and file in this directory.") var o: String?
            func run() throws {
                let store = try openImages(global.stateRoot)
                let m = try SmallGuestImage.install(into: store, name: name, version: version, imageMiB: size,
                                                    keepFilesIn: o, progress: isatty(2) == 1)
                print("Imported image \(m.uuid) (\(m.name)@\(m.version), zvol of \(m.imageSizeMiB ?? 0) MiB)")
            }
        }

        /// A full Debian kvm guest as a zvol image (docs/vm.md, "The Debian guest").
        struct DebianGuestBuild: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "debian-guest",
                abstract: "A full Debian kvm guest (cloud kernel, systemd, DHCP) as a zvol image that boots from its disk.")
            @OptionGroup var global: GlobalOptions
            @Option(name: .long, help: "Debian suite.") var suite = "bookworm"
            @Option(name: .long, help: "Mirror URL (default: the host's, from /etc/apt).") var mirror: String?
            @Option(name: .long, help: "Image name (default: debian-SUITE-guest).") var name: String?
            @Option(name: .long, help: "Image version (default: today, YYYYMMDD).") var version: String?
            @Option(name: .long, help: "Disk size in MiB (image_size).") var size = DebianGuestImage.defaultImageMiB
            @Option(name: .long, help: "More packages installed at build time, comma-separated (debootstrap --include), e.g. btrfs-progs,lxcfs.") var packages: String?
            @Option(name: .short, help: "Also keep the manifest and file in this directory.") var o: String?
            func run() throws {
                let include = (packages ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                try DebianImage.checkPackages(include)  // before anything is made
                let store = try openImages(global.stateRoot)
                let url = try mirror ?? AptSources.debianMirror()
                let m = try DebianGuestImage.install(into: store, suite: suite, mirror: url, name: name, version: version,
                                                     imageMiB: size, extraPackages: include, keepFilesIn: o, progress: isatty(2) == 1)
                print("Imported image \(m.uuid) (\(m.name)@\(m.version), zvol of \(m.imageSizeMiB ?? 0) MiB)")
            }
        }

        struct Debian: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "A minimal Debian (debootstrap minbase) from the host's apt mirror.")
            @OptionGroup var global: GlobalOptions
            @Option(name: .long, help: "Debian suite.") var suite = "bookworm"
            @Option(name: .long, help: "Mirror URL (default: the host's, from /etc/apt).") var mirror: String?
            @Option(name: .short, help: "Also keep the manifest and file in this directory.") var o: String?
            @Option(name: .customLong("init"), help: "The image's init: none (Lumos's init idles, the default) or systemd (PID 1 of the zone, docs/vmadm.md).") var initSystem: DebianImage.InitSystem = .none
            @Option(name: .long, help: "More packages installed at build time, comma-separated (debootstrap --include), e.g. nginx,curl.") var packages: String?
            func run() throws {
                let include = (packages ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                try DebianImage.checkPackages(include)  // before anything is made
                let store = try openImages(global.stateRoot)
                let url = try mirror ?? AptSources.debianMirror()
                let name = initSystem == .systemd ? "debian-\(suite)-systemd" : "debian-\(suite)"
                let m = try store.installBuilt(name: name, version: ImageManifest.todayVersion(),
                                               description: "Debian \(suite) minbase\(initSystem == .systemd ? " with systemd" : "")\(include.isEmpty ? "" : " and " + include.joined(separator: ", ")) from \(url)",
                                               keepFilesIn: o) {
                    try DebianImage.build(into: $0, suite: suite, mirror: url, initSystem: initSystem, include: include, progress: isatty(2) == 1)
                }
                print("Imported image \(m.uuid) (\(m.name)@\(m.version))")
            }
        }
    }
}

extension DebianImage.InitSystem: ExpressibleByArgument {}
