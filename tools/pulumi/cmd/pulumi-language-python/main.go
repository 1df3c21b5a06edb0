// Command pulumi-language-python is kms-iac's own build of a Pulumi Python
// language host: the plugin that the Pulumi engine starts to run a Python
// program (`pulumi up`, `pulumi preview`, ...) and Python plugins such as
// policy packs (`pulumi up --policy-pack DIR`) and Python providers.
//
// Why this exists instead of Pulumi's own host: upstream builds its host from
// the Go module github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3,
// and the Go module proxy this project can reach does not serve that module at
// any version (every request answers 403 "not available"). All the parts the
// host is made of do come with github.com/pulumi/pulumi/sdk/v3, which is served:
// the gRPC contract (proto/go), the virtualenv/pip/uv/poetry handling
// (python/toolchain) and the `pulumi-language-python-exec` shim that actually
// runs the user's program. This file wires those together, following the
// behaviour of the upstream host of the same version, so the engine sees no
// difference for running programs and plugins.
//
// Implemented RPCs: Handshake, GetRequiredPackages, Run, GetPluginInfo,
// InstallDependencies, RuntimeOptionsPrompts, About, GetProgramDependencies,
// RunPlugin, Cancel. Left unimplemented (the engine gets codes.Unimplemented):
// GetRequiredPlugins (superseded by GetRequiredPackages, as upstream), and the
// code generation RPCs GenerateProgram, GenerateProject, GeneratePackage, Pack,
// Link, Template -- i.e. `pulumi convert`, `pulumi new` from a template,
// `pulumi package gen-sdk|add --language python` are not available with it.
//
// The engine starts it as `pulumi-language-python [flags] ENGINE_ADDRESS` and
// reads the gRPC port it listens on from its first line of stdout.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The shim that runs a program, expected beside this executable (it is a
// Python script shipped in sdk/v3 at python/cmd/pulumi-language-python-exec).
const execShimName = "pulumi-language-python-exec"

// Exit code with which the shim says "the user has already been shown an
// actionable error": the run is then reported as a bail, without another message.
const exitAfterUserMessage = 32

func main() {
	var tracing, useExecutor string
	flag.StringVar(&tracing, "tracing", "", "Emit tracing to a Zipkin-compatible tracing endpoint")
	flag.StringVar(&useExecutor, "use-executor", "",
		"Run programs with this executor instead of "+execShimName+" beside this binary")
	// Accepted for compatibility with engines that still pass them; the values come
	// from the RPC requests (Pulumi.yaml runtime options) instead.
	flag.String("virtualenv", "", "[obsolete] virtual environment path")
	flag.String("root", "", "[obsolete] project root path")
	flag.String("typechecker", "", "[obsolete] typechecker")
	flag.String("toolchain", "pip", "[obsolete] package manager")
	flag.Parse()

	logging.InitLogging(false, 0, false)
	cmdutil.InitTracing("pulumi-language-python", "pulumi-language-python", tracing)

	shim := useExecutor
	if shim == "" {
		self, err := os.Executable()
		if err != nil {
			cmdutil.Exit(fmt.Errorf("could not determine current executable: %w", err))
		}
		shim = filepath.Join(filepath.Dir(self), execShimName)
		if _, err := os.Stat(shim); err != nil {
			cmdutil.Exit(fmt.Errorf("missing executor %s: %w", shim, err))
		}
	}

	var engineAddress string
	if args := flag.Args(); len(args) > 0 {
		engineAddress = args[0]
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	stop := make(chan bool)
	go func() {
		<-ctx.Done()
		cancel()
		close(stop)
	}()

	// Exit when the engine goes away.
	if engineAddress != "" {
		if err := rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, cancel); err != nil {
			cmdutil.Exit(fmt.Errorf("could not start health check host RPC server: %w", err))
		}
	}

	host := &languageHost{shim: shim, tracing: tracing, engineAddress: engineAddress}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
		Options: rpcutil.OpenTracingServerInterceptorOptions(nil),
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start language host RPC server: %w", err))
	}

	// The engine reads the port from our first line of output.
	fmt.Printf("%d\n", handle.Port)

	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host RPC stopped serving: %w", err))
	}
}

type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	shim    string
	tracing string

	mu            sync.Mutex
	engineAddress string
}

func (h *languageHost) engine() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.engineAddress
}

// pythonOptions turns the runtime options of Pulumi.yaml (`runtime: {name:
// python, options: {...}}`) into toolchain options. Without a `toolchain`
// option the toolchain is detected (uv.lock, poetry.lock, else pip).
func pythonOptions(info *pulumirpc.ProgramInfo) (toolchain.PythonOptions, error) {
	opts := toolchain.PythonOptions{Root: info.GetRootDirectory(), ProgramDir: info.GetProgramDirectory()}
	raw := map[string]any{}
	if info.GetOptions() != nil {
		raw = info.GetOptions().AsMap()
	}
	str := func(key string) (string, bool, error) {
		v, ok := raw[key]
		if !ok {
			return "", false, nil
		}
		s, isStr := v.(string)
		if !isStr {
			return "", true, fmt.Errorf("%s option must be a string", key)
		}
		return s, true, nil
	}

	if v, ok, err := str("virtualenv"); err != nil {
		return opts, err
	} else if ok {
		opts.Virtualenv = v
	}
	if v, ok, err := str("typechecker"); err != nil {
		return opts, err
	} else if ok {
		switch v {
		case "mypy":
			opts.Typechecker = toolchain.TypeCheckerMypy
		case "pyright":
			opts.Typechecker = toolchain.TypeCheckerPyright
		default:
			return opts, fmt.Errorf("unsupported typechecker option: %s", v)
		}
	}
	if v, ok, err := str("toolchain"); err != nil {
		return opts, err
	} else if ok {
		switch v {
		case "pip":
			opts.Toolchain = toolchain.Pip
		case "poetry":
			opts.Toolchain = toolchain.Poetry
		case "uv":
			opts.Toolchain = toolchain.Uv
		default:
			return opts, fmt.Errorf("unsupported toolchain option: %s", v)
		}
	}
	return opts, nil
}

func (h *languageHost) Handshake(
	ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	if addr := req.GetEngineAddress(); addr != "" {
		h.mu.Lock()
		h.engineAddress = addr
		h.mu.Unlock()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *languageHost) GetPluginInfo(ctx context.Context, _ *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

func (h *languageHost) Cancel(ctx context.Context, _ *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// engineLog is an io.Writer that forwards what is written as ephemeral log
// messages of the engine (how dependency installation progress is shown).
type engineLog struct {
	ctx      context.Context
	client   pulumirpc.EngineClient
	severity pulumirpc.LogSeverity
	stream   int32
}

func (w *engineLog) Write(p []byte) (int, error) {
	_, err := w.client.Log(w.ctx, &pulumirpc.LogRequest{
		Message:   strings.ToValidUTF8(string(p), "\uFFFD"),
		Ephemeral: true,
		StreamId:  w.stream,
		Severity:  w.severity,
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *languageHost) engineWriters(ctx context.Context) (io.Writer, io.Writer, func(), error) {
	addr := h.engine()
	if addr == "" {
		return os.Stderr, os.Stderr, func() {}, nil
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		rpcutil.GrpcChannelOptions())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("language host could not connect to the engine: %w", err)
	}
	client := pulumirpc.NewEngineClient(conn)
	stream := rand.Int31() //nolint:gosec // a stream id, not a secret
	out := &engineLog{ctx: ctx, client: client, severity: pulumirpc.LogSeverity_INFO, stream: stream}
	errw := &engineLog{ctx: ctx, client: client, severity: pulumirpc.LogSeverity_ERROR, stream: stream}
	return out, errw, func() { _ = conn.Close() }, nil
}

// listPulumiPackagesScript prints, as JSON, the installed distributions that
// may need a resource plugin: every `pulumi-*` distribution, and any
// distribution whose top-level module carries a pulumi-plugin.json.
const listPulumiPackagesScript = `
import importlib.metadata as md, json, os, sys
seen, out = set(), []
for dist in md.distributions():
    name = (dist.metadata["Name"] or "").strip()
    norm = name.lower().replace("_", "-")
    if not norm or norm in seen:
        continue
    seen.add(norm)
    meta = None
    try:
        path = dist.locate_file(os.path.join(norm.replace("-", "_"), "pulumi-plugin.json"))
        if os.path.isfile(path):
            with open(path) as f:
                meta = json.load(f)
    except Exception:
        meta = None
    if meta is None and not norm.startswith("pulumi-"):
        continue
    out.append({"name": norm, "version": dist.version, "plugin": meta})
json.dump(out, sys.stdout)
`

// Distributions named pulumi-* that are known to have no plugin.
var withoutPlugin = map[string]bool{"pulumi-policy": true, "pulumi-esc-sdk": true}

type pythonDist struct {
	Name    string          `json:"name"`
	Version string          `json:"version"`
	Plugin  json.RawMessage `json:"plugin"`
}

func (h *languageHost) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	opts, err := pythonOptions(req.GetInfo())
	if err != nil {
		return nil, err
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return nil, err
	}
	stdout, stderr, done, err := h.engineWriters(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	// Creates the virtualenv (and installs requirements) only if it is missing.
	if err := tc.EnsureVenv(ctx, req.GetInfo().GetProgramDirectory(), false, true, stdout, stderr); err != nil {
		return nil, err
	}

	cmd, err := tc.Command(ctx, "-c", listPulumiPackagesScript)
	if err != nil {
		return nil, err
	}
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("listing installed Python packages: %w: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("listing installed Python packages: %w", err)
	}
	var dists []pythonDist
	if err := json.Unmarshal(out, &dists); err != nil {
		return nil, fmt.Errorf("parsing the list of installed Python packages: %w", err)
	}

	var pkgs []*pulumirpc.PackageDependency
	for _, d := range dists {
		if withoutPlugin[d.Name] {
			continue
		}
		dep := &pulumirpc.PackageDependency{Kind: "resource"}
		if len(d.Plugin) > 0 && string(d.Plugin) != "null" {
			var meta plugin.PulumiPluginJSON
			if err := json.Unmarshal(d.Plugin, &meta); err != nil {
				return nil, fmt.Errorf("reading pulumi-plugin.json of %s: %w", d.Name, err)
			}
			if !meta.Resource {
				continue // the package declares that it has no resource plugin
			}
			dep.Name, dep.Version, dep.Server = meta.Name, meta.Version, meta.Server
			dep.Parameterization = parameterization(meta.Parameterization)
			dep.Extension = parameterization(meta.ExtensionParameterization)
		}
		if dep.Name == "" {
			dep.Name = strings.TrimPrefix(d.Name, "pulumi-")
		}
		if dep.Version == "" {
			v, ok := pep440ToSemver(d.Version)
			if !ok {
				logging.V(5).Infof("skipping %s: no plugin version for package version %q", d.Name, d.Version)
				continue
			}
			dep.Version = v
		}
		if !strings.HasPrefix(dep.Version, "v") {
			dep.Version = "v" + dep.Version
		}
		pkgs = append(pkgs, dep)
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: pkgs}, nil
}

func parameterization(p *plugin.PulumiParameterizationJSON) *pulumirpc.PackageParameterization {
	if p == nil {
		return nil
	}
	return &pulumirpc.PackageParameterization{Name: p.Name, Version: p.Version, Value: p.Value}
}

// pep440ToSemver maps the usual shapes of a Python package version to the
// plugin's semver: 1.2 -> 1.2.0, 1.2.3a4 -> 1.2.3-alpha.4, 1.2.3b4 ->
// 1.2.3-beta.4, 1.2.3rc4 -> 1.2.3-rc.4, .postN -> +postN, .devN -> +devN.
// Anything else (epochs, local versions) is reported as not mappable.
func pep440ToSemver(v string) (string, bool) {
	digits := func(s string) (string, string) {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return s[:i], s[i:]
	}
	var parts []string
	rest := v
	for {
		n, r := digits(rest)
		if n == "" {
			return "", false
		}
		parts = append(parts, n)
		rest = r
		if strings.HasPrefix(rest, ".") {
			if m, _ := digits(rest[1:]); m != "" {
				rest = rest[1:]
				continue
			}
		}
		break
	}
	for len(parts) < 3 {
		parts = append(parts, "0")
	}
	out := strings.Join(parts, ".")
	for _, pre := range []struct{ py, sem string }{{"rc", "-rc."}, {"a", "-alpha."}, {"b", "-beta."}} {
		if strings.HasPrefix(rest, pre.py) {
			n, r := digits(rest[len(pre.py):])
			if n == "" {
				return "", false
			}
			out += pre.sem + n
			rest = r
			break
		}
	}
	build := ""
	if strings.HasPrefix(rest, ".post") {
		n, r := digits(rest[len(".post"):])
		build, rest = "post"+n, r
	}
	if strings.HasPrefix(rest, ".dev") {
		n, r := digits(rest[len(".dev"):])
		build, rest = build+"dev"+n, r
	}
	if rest != "" {
		return "", false
	}
	if build != "" {
		out += "+" + build
	}
	return out, true
}

// runArgs is the command line of the exec shim for a RunRequest.
func (h *languageHost) runArgs(req *pulumirpc.RunRequest) []string {
	args := []string{h.shim}
	add := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engine())
	add("project", req.GetProject())
	add("root_directory", req.GetInfo().GetRootDirectory())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", strconv.FormatBool(req.GetDryRun()))
	add("parallel", strconv.Itoa(int(req.GetParallel())))
	add("tracing", h.tracing)
	add("organization", req.GetOrganization())
	// The engine always names an entry point, "." for the program directory.
	args = append(args, req.GetInfo().GetEntryPoint())
	return append(args, req.GetArgs()...)
}

func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	if req.GetAttachDebugger() {
		return &pulumirpc.RunResponse{
			Error: "attaching a debugger is not supported by kms-iac's pulumi-language-python",
		}, nil
	}
	opts, err := pythonOptions(req.GetInfo())
	if err != nil {
		return nil, err
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}

	// The shim reads the stack configuration from these variables. Both are
	// always set (as {} and [] when empty; JSON null would crash the SDK) so
	// nothing stale is inherited from the environment.
	configMap := req.GetConfig()
	if configMap == nil {
		configMap = map[string]string{}
	}
	config, err := json.Marshal(configMap)
	if err != nil {
		return nil, fmt.Errorf("failed to serialize configuration: %w", err)
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secrets, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("failed to serialize configuration secret keys: %w", err)
	}

	if err := h.typecheck(ctx, tc, opts, req.GetInfo().GetProgramDirectory()); err != nil {
		return nil, err
	}

	cmd, err := tc.Command(ctx, h.runArgs(req)...)
	if err != nil {
		return nil, err
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secrets))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	logging.V(5).Infof("language host launching: %s", strings.Join(cmd.Args, " "))

	if err := cmd.Run(); err != nil {
		// Let the engine collect everything the program printed before it died.
		_ = os.Stdout.Sync()
		_ = os.Stderr.Sync()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("problem executing program (could not run language executor): %v", err),
			}, nil
		}
		switch code := ee.ExitCode(); code {
		case exitAfterUserMessage:
			return &pulumirpc.RunResponse{Bail: true}, nil
		case -1, 0:
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited unexpectedly: %v", ee)}, nil
		default:
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited with non-zero exit code: %d", code)}, nil
		}
	}
	return &pulumirpc.RunResponse{}, nil
}

// typecheck runs mypy or pyright on the program first when Pulumi.yaml asks for it.
func (h *languageHost) typecheck(ctx context.Context, tc toolchain.Toolchain, opts toolchain.PythonOptions,
	programDir string,
) error {
	var name string
	switch opts.Typechecker {
	case toolchain.TypeCheckerMypy:
		name = "mypy"
	case toolchain.TypeCheckerPyright:
		name = "pyright"
	default:
		return nil
	}
	args := []string{"-m", name}
	if name == "mypy" {
		if venv, err := tc.VirtualEnvPath(ctx); err == nil && venv != "" {
			if rel, err := filepath.Rel(programDir, venv); err == nil {
				args = append(args, "--exclude", rel)
			}
		}
	}
	args = append(args, programDir)
	cmd, err := tc.Command(ctx, args...)
	if err != nil {
		return err
	}
	cmd.Dir = programDir
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s failed: %w", name, err)
	}
	return nil
}

func (h *languageHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	opts, err := pythonOptions(req.GetInfo())
	if err != nil {
		return err
	}
	// Plugins never run in the ambient Python environment.
	if req.GetIsPlugin() && opts.Toolchain == toolchain.Pip && opts.Virtualenv == "" {
		opts.Virtualenv = "venv"
	}
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.GetIsTerminal())
	if err != nil {
		return err
	}
	defer closer.Close()

	fmt.Fprint(stdout, "Installing dependencies...\n\n")
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return err
	}
	if err := tc.InstallDependencies(server.Context(), req.GetInfo().GetProgramDirectory(),
		req.GetUseLanguageVersionTools(), true, stdout, stderr); err != nil {
		return err
	}
	fmt.Fprint(stdout, "Finished installing dependencies\n\n")
	return closer.Close()
}

func (h *languageHost) RuntimeOptionsPrompts(
	ctx context.Context, req *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	// No interactive questions: Pulumi.yaml states the options it needs.
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *languageHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	opts := toolchain.PythonOptions{Toolchain: toolchain.Pip}
	if req.GetInfo() != nil {
		var err error
		if opts, err = pythonOptions(req.GetInfo()); err != nil {
			return nil, err
		}
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return nil, err
	}
	info, err := tc.About(ctx)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{Executable: info.PythonExecutable, Version: info.PythonVersion.String()}, nil
}

func (h *languageHost) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	opts, err := pythonOptions(req.GetInfo())
	if err != nil {
		return nil, err
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return nil, err
	}
	deps, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, fmt.Errorf("failed to get python dependencies: %w", err)
	}
	out := make([]*pulumirpc.DependencyInfo, 0, len(deps))
	for _, d := range deps {
		out = append(out, &pulumirpc.DependencyInfo{Name: d.Name, Version: d.Version})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: out}, nil
}

// RunPlugin runs a Python plugin directory: a policy pack (PulumiPolicy.yaml)
// or a provider (PulumiPlugin.yaml). A directory with __main__.py is run as
// `python DIR ARGS...`; a buildable package (pyproject.toml) without one is run
// through the SDK's `python -m pulumi.run.plugin NAME ARGS...` entry point.
func (h *languageHost) RunPlugin(
	req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer,
) error {
	ctx := server.Context()
	opts, err := pythonOptions(req.GetInfo())
	if err != nil {
		return err
	}
	// Plugins never run in the ambient Python environment.
	if opts.Toolchain == toolchain.Pip && opts.Virtualenv == "" {
		opts.Virtualenv = "venv"
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return err
	}

	hasMain := true
	if _, err := os.Stat(filepath.Join(opts.Root, "__main__.py")); err != nil {
		if !os.IsNotExist(err) {
			return fmt.Errorf("looking for __main__.py: %w", err)
		}
		hasMain = false
	}

	var cmd *exec.Cmd
	if !hasMain && sdkHasPluginRunner(ctx, tc) {
		buildable, err := toolchain.IsBuildablePackage(opts.Root)
		if err != nil {
			return fmt.Errorf("checking if plugin is a buildable package: %w", err)
		}
		if !buildable {
			return errors.New("plugin is not runnable, it provides neither __main__.py nor a buildable pyproject.toml")
		}
		pyproject, err := toolchain.LoadPyproject(opts.Root)
		if err != nil {
			return fmt.Errorf("loading pyproject: %w", err)
		}
		cmd, err = tc.ModuleCommand(ctx, "pulumi.run.plugin", append([]string{pyproject.Project.Name}, req.GetArgs()...)...)
		if err != nil {
			return err
		}
	} else {
		cmd, err = tc.Command(ctx, append([]string{req.GetInfo().GetProgramDirectory()}, req.GetArgs()...)...)
		if err != nil {
			return err
		}
	}

	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()

	cmd.Dir = req.GetPwd()
	cmd.Env = append(cmd.Env, req.GetEnv()...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	logging.V(5).Infof("RunPlugin: %s", cmd.String())
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return fmt.Errorf("problem executing plugin program (could not run language executor): %w", err)
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			return server.Send(&pulumirpc.RunPluginResponse{
				//nolint:gosec // an exit status fits in 8 bits
				Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(ws.ExitStatus())},
			})
		}
		return fmt.Errorf("program exited unexpectedly: %w", ee)
	}
	return closer.Close()
}

// sdkHasPluginRunner reports whether the plugin's pulumi SDK has the
// `pulumi.run.plugin` module (older SDKs do not).
func sdkHasPluginRunner(ctx context.Context, tc toolchain.Toolchain) bool {
	cmd, err := tc.Command(ctx, "-c", "import pulumi.run.plugin")
	if err != nil {
		return true
	}
	out, err := cmd.CombinedOutput()
	return err == nil || !strings.Contains(string(out), "ModuleNotFoundError")
}
