import Foundation
import Testing
import Warren
import WarrenHealth
import WarrenHTTP

/// The deploy files must not drift from the server: every probe path they name is a route the side
/// port serves, each Kubernetes probe asks the path of its role, every health port is the worker's
/// HEALTH_PORT, and the shutdown budget fits the grace period.
@Suite("Deploy files match the server")
struct DeployDriftTests {
    let files = DeployFiles()
    /// The worker's default HEALTH_PORT (event-worker uses the same default: DESIGN.md).
    let healthPort = WorkerConfiguration().healthPort!

    // MARK: - Kubernetes

    @Test("each Kubernetes probe asks the path of its role on the health port")
    func kubernetesProbes() throws {
        let deployment = try #require(try files.manifest(kind: "Deployment", name: "event-worker"),
                                      "deploy/k8s has no Deployment event-worker")
        let containers = deployment["spec"]["template"]["spec"]["containers"].array
        try #require(!containers.isEmpty, "the Deployment has no containers")
        for container in containers {
            let name = container["name"].string ?? "?"
            for (probe, expectedPath) in ProbeContract.pathForKubernetesProbe.sorted(by: { $0.key < $1.key }) {
                let httpGet = container[probe]["httpGet"]
                #expect(!httpGet.isMissing, "container \(name): \(probe) has no httpGet")
                #expect(httpGet["path"].string == expectedPath,
                        "container \(name): \(probe) asks \(httpGet["path"].string ?? "nothing"), its role's path is \(expectedPath)")
                #expect(resolvePort(httpGet["port"], in: container) == healthPort,
                        "container \(name): \(probe) port \(httpGet["port"].string ?? "?") is not the health port \(healthPort)")
            }
        }
    }

    @Test("every health port in the manifests, compose file and Dockerfile is HEALTH_PORT")
    func healthPorts() throws {
        // Deployment: the named container port, and HEALTH_PORT if set in env.
        let deployment = try #require(try files.manifest(kind: "Deployment", name: "event-worker"))
        for container in deployment["spec"]["template"]["spec"]["containers"].array {
            let health = container["ports"].array.first { $0["name"].string == "health" }
            #expect(health?["containerPort"].int == healthPort,
                    "deployment.yaml: container port \"health\" is \(health?["containerPort"].string ?? "missing"), not \(healthPort)")
            for env in container["env"].array where env["name"].string == "HEALTH_PORT" {
                #expect(env["value"].int == healthPort, "deployment.yaml: env HEALTH_PORT is not \(healthPort)")
            }
        }
        // ConfigMap.
        for (file, document) in try files.manifests() where document["kind"].string == "ConfigMap" {
            let value = document["data"]["HEALTH_PORT"]
            if !value.isMissing {
                #expect(value.int == healthPort, "\(file): HEALTH_PORT is \(value.string ?? "?"), not \(healthPort)")
            }
        }
        // Service: the target port is the named health port (or the number).
        if let service = try files.manifest(kind: "Service", name: "event-worker") {
            for port in service["spec"]["ports"].array {
                let target = port["targetPort"]
                #expect(target.string == "health" || target.int == healthPort,
                        "service.yaml: targetPort \(target.string ?? "?") is neither \"health\" nor \(healthPort)")
            }
        }
        // docker-compose.yml: the worker's published container port and HEALTH_PORT.
        let worker = try composeWorker()
        let containerPorts = worker["ports"].array.compactMap(composeContainerPort)
        #expect(containerPorts.contains(healthPort), "docker-compose.yml: the worker does not publish container port \(healthPort)")
        #expect(containerPorts.allSatisfy { $0 == healthPort }, "docker-compose.yml: the worker publishes ports \(containerPorts)")
        if let port = composeEnvironment(worker)["HEALTH_PORT"] {
            #expect(Int(port) == healthPort, "docker-compose.yml: HEALTH_PORT is \(port), not \(healthPort)")
        }
        // Dockerfile: EXPOSE, and HEALTH_PORT if an ENV sets it.
        let instructions = try files.dockerfileInstructions()
        let exposed = instructions.filter { $0.keyword == "EXPOSE" }
            .flatMap { $0.arguments.split(separator: " ").map { Int($0.split(separator: "/")[0]) } }
        #expect(exposed == [healthPort], "deploy/Dockerfile: EXPOSE \(exposed.map { $0.map(String.init) ?? "?" }), expected only \(healthPort)")
        for env in instructions where env.keyword == "ENV" && env.arguments.contains("HEALTH_PORT") {
            #expect(env.arguments.contains("HEALTH_PORT=\(healthPort)"), "deploy/Dockerfile: ENV \(env.arguments)")
        }
    }

    // MARK: - Docker health checks

    @Test("the Docker and compose health checks run event-worker healthcheck --probe ready")
    func dockerHealthchecks() throws {
        let instructions = try files.dockerfileInstructions()
        let healthchecks = instructions.filter { $0.keyword == "HEALTHCHECK" }
        try #require(healthchecks.count == 1, "deploy/Dockerfile: expected one HEALTHCHECK, found \(healthchecks.count)")
        let command = try dockerfileExecForm(afterCMDIn: healthchecks[0].arguments)
        #expect(command == ["event-worker", "healthcheck", "--probe", "ready"], "deploy/Dockerfile: HEALTHCHECK CMD \(command)")
        let entrypoint = instructions.last { $0.keyword == "ENTRYPOINT" }?.arguments
        #expect(entrypoint == #"["event-worker"]"#, "deploy/Dockerfile: ENTRYPOINT \(entrypoint ?? "missing")")

        let test = try composeWorker()["healthcheck"]["test"]
        let composeCommand = test.array.compactMap(\.string)
        #expect(composeCommand.first == "CMD", "docker-compose.yml: worker healthcheck test should be an exec form [\"CMD\", ...]")
        #expect(Array(composeCommand.dropFirst()) == ["event-worker", "healthcheck", "--probe", "ready"],
                "docker-compose.yml: worker healthcheck test is \(composeCommand)")
        for (source, command) in [("deploy/Dockerfile", command), ("docker-compose.yml", composeCommand)] {
            let probe = ProbeContract.healthcheckProbe(in: command)
            #expect(probe.flatMap { ProbeContract.pathForHealthcheckProbe[$0] } == HealthPaths.ready,
                    "\(source): healthcheck --probe \(probe ?? "?") is not readiness")
        }
    }

    // MARK: - Served routes

    @Test("every probe path the deploy files name is served by the side port's routes")
    func pathsAreServed() throws {
        var router = HTTPRouter()
        router.addHealthRoutes(HealthReporter(registry: HealthRegistry(), watchdog: LivenessWatchdog()))

        var named: [(source: String, path: String)] = []
        for (file, document) in try files.manifests() {
            named += sidePortPaths(in: document).map { ("\(file) \($0.location)", $0.path) }
        }
        for document in try files.yaml("docker-compose.yml") {
            named += sidePortPaths(in: document).map { ("docker-compose.yml \($0.location)", $0.path) }
            for (service, definition) in document["services"].mapping {
                let command = definition["healthcheck"]["test"].array.compactMap(\.string)
                if let probe = ProbeContract.healthcheckProbe(in: command) {
                    named.append(("docker-compose.yml services.\(service).healthcheck --probe \(probe)",
                                  ProbeContract.pathForHealthcheckProbe[probe] ?? "--probe \(probe)"))
                }
            }
        }
        for instruction in try files.dockerfileInstructions() where instruction.keyword == "HEALTHCHECK" {
            let command = try dockerfileExecForm(afterCMDIn: instruction.arguments)
            if let probe = ProbeContract.healthcheckProbe(in: command) {
                named.append(("deploy/Dockerfile HEALTHCHECK --probe \(probe)",
                              ProbeContract.pathForHealthcheckProbe[probe] ?? "--probe \(probe)"))
            }
        }

        // The three probes must each be named somewhere, or the check proves little.
        for path in [HealthPaths.started, HealthPaths.alive, HealthPaths.ready] {
            #expect(named.contains { $0.path == path }, "no deploy file names \(path)")
        }
        for (source, path) in named {
            let match = router.match(path: path)
            #expect(match != nil, "\(source) names \(path), which the side port does not serve")
            if ProbeContract.pathForKubernetesProbe.values.contains(path) {
                #expect(match?.remainder == nil, "\(path) should be an exact route")
            }
        }
    }

    // MARK: - Shutdown and credentials

    @Test("preStop pause + DRAIN_TIMEOUT fit in the termination grace period")
    func shutdownBudget() throws {
        let deployment = try #require(try files.manifest(kind: "Deployment", name: "event-worker"))
        let pod = deployment["spec"]["template"]["spec"]
        let grace = pod["terminationGracePeriodSeconds"].int ?? 30
        let config = try #require(try files.manifest(kind: "ConfigMap", name: "event-worker-config"))
        let drain = try #require(config["data"]["DRAIN_TIMEOUT"].int, "configmap.yaml sets no DRAIN_TIMEOUT")
        #expect(drain < 30, "DRAIN_TIMEOUT \(drain) must stay below 30 s (the worker refuses more)")
        for container in pod["containers"].array {
            let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"].int ?? 0
            #expect(pause + drain < grace,
                    "preStop \(pause) s + DRAIN_TIMEOUT \(drain) s must be below terminationGracePeriodSeconds \(grace) s")
        }
        let worker = try composeWorker()
        if let value = composeEnvironment(worker)["DRAIN_TIMEOUT"], let composeDrain = Int(value),
           let stop = worker["stop_grace_period"].string {
            #expect(composeDrain < seconds(stop) ?? 10, "docker-compose.yml: DRAIN_TIMEOUT \(composeDrain) s vs stop_grace_period \(stop)")
        }
    }

    @Test("the broker, Redis and Postgres URLs come from the Secret only")
    func credentialsFromSecret() throws {
        let deployment = try #require(try files.manifest(kind: "Deployment", name: "event-worker"))
        for container in deployment["spec"]["template"]["spec"]["containers"].array {
            let env = container["env"].array
            for name in ["AMQP_URL", "REDIS_URL", "DATABASE_URL"] {
                let entry = env.first { $0["name"].string == name }
                #expect(entry?["value"].isMissing ?? false, "deployment.yaml: \(name) must not be a plain value")
                #expect(entry?["valueFrom"]["secretKeyRef"]["key"].string == name,
                        "deployment.yaml: \(name) should come from a secretKeyRef with key \(name)")
            }
        }
        for (file, document) in try files.manifests() where document["kind"].string == "ConfigMap" {
            let urls = document["data"].mapping.map(\.key).filter { $0.hasSuffix("_URL") }
            #expect(urls.isEmpty, "\(file): \(urls) belong in the Secret")
        }
    }

    @Test("the TLS files the example URLs name are in the Secret volume the worker can read")
    func tlsFilesMounted() throws {
        let deployment = try #require(try files.manifest(kind: "Deployment", name: "event-worker"))
        let pod = deployment["spec"]["template"]["spec"]
        let volume = try #require(pod["volumes"].array.first { $0["name"].string == "tls" }, "deployment.yaml: no volume tls")
        let secretName = try #require(volume["secret"]["secretName"].string)
        #expect(volume["secret"]["optional"].raw as? Bool == true, "the TLS Secret must be optional: plain URLs need none")
        // libpq refuses a key others can read; root-owned 0440 with the pod's group is what it accepts.
        let mode = try #require(volume["secret"]["defaultMode"].int)
        #expect(mode & 0o037 == 0 && mode & 0o040 != 0, "defaultMode \(String(mode, radix: 8)): group-readable, nothing for others")
        #expect(pod["securityContext"]["fsGroup"].int == pod["securityContext"]["runAsGroup"].int)
        let container = try #require(pod["containers"].array.first)
        let mount = try #require(container["volumeMounts"].array.first { $0["name"].string == "tls" })
        let mountPath = try #require(mount["mountPath"].string)
        #expect(mount["readOnly"].raw as? Bool == true)

        let tlsSecret = try #require(try files.manifest(kind: "Secret", name: secretName), "no example of Secret \(secretName)")
        let keys = Set(tlsSecret["stringData"].mapping.map(\.key))
        let example = try files.text("deploy/k8s/secret.example.yaml")
        var named: Set<String> = []
        for parameter in ["cacertfile", "certfile", "keyfile", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "sslrootcert", "sslcert", "sslkey"] {
            let pattern = "\(parameter)="
            var rest = example[...]
            while let range = rest.range(of: pattern) {
                let path = rest[range.upperBound...].prefix { !"&,' \n".contains($0) }
                #expect(path.hasPrefix(mountPath + "/"), "\(parameter)=\(path) is not under \(mountPath)")
                named.insert(String(path.dropFirst(mountPath.count + 1)))
                rest = rest[range.upperBound...]
            }
        }
        #expect(named.count == 3 && named.isSubset(of: keys), "files named \(named), Secret keys \(keys)")
    }

    // MARK: - Helpers

    /// A probe's port: a number, or the name of one of the container's ports.
    private func resolvePort(_ port: YAMLValue, in container: YAMLValue) -> Int? {
        if let number = port.raw as? Int { return number }
        guard let name = port.string else { return nil }
        return container["ports"].array.first { $0["name"].string == name }?["containerPort"].int
    }

    private func composeWorker() throws -> YAMLValue {
        let document = try #require(try files.yaml("docker-compose.yml").first, "docker-compose.yml is empty")
        let worker = document["services"]["worker"]
        try #require(!worker.isMissing, "docker-compose.yml has no service \"worker\"")
        return worker
    }

    /// `environment:` as a mapping or as a list of `KEY=VALUE`.
    private func composeEnvironment(_ service: YAMLValue) -> [String: String] {
        let environment = service["environment"]
        if environment.raw is [Any] {
            return Dictionary(environment.array.compactMap { item -> (String, String)? in
                guard let text = item.string, let equals = text.firstIndex(of: "=") else { return nil }
                return (String(text[..<equals]), String(text[text.index(after: equals)...]))
            }, uniquingKeysWith: { $1 })
        }
        return Dictionary(environment.mapping.compactMap { key, value in value.string.map { (key, $0) } },
                          uniquingKeysWith: { $1 })
    }

    /// The container side of a compose port: `"8080:8080"`, `"127.0.0.1:8080:8080/tcp"`, `{target: 8080}`.
    private func composeContainerPort(_ entry: YAMLValue) -> Int? {
        if let target = entry["target"].int { return target }
        guard let text = entry.string else { return nil }
        let withoutProtocol = text.split(separator: "/").first.map(String.init) ?? text
        return withoutProtocol.split(separator: ":").last.flatMap { Int($0) }
    }

    /// The JSON exec form after `CMD` in a HEALTHCHECK's arguments.
    private func dockerfileExecForm(afterCMDIn arguments: String) throws -> [String] {
        let range = try #require(arguments.range(of: "CMD "), "HEALTHCHECK without CMD: \(arguments)")
        let json = arguments[range.upperBound...].trimmingCharacters(in: .whitespaces)
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8))
        return try #require(parsed as? [String], "HEALTHCHECK CMD is not the exec form [\"...\"]: \(json)")
    }

    /// Compose durations like `30s`, `1m30s`.
    private func seconds(_ duration: String) -> Int? {
        var total = 0, number = ""
        for character in duration {
            if character.isNumber { number.append(character); continue }
            guard let value = Int(number) else { return nil }
            switch character {
            case "h": total += value * 3600
            case "m": total += value * 60
            case "s": total += value
            default: return nil
            }
            number = ""
        }
        return number.isEmpty ? total : Int(number).map { total + $0 }
    }
}
