package capability

// Descriptions of the built-in capabilities' arguments and values, for
// catalogs (`ccos capabilities`, the MCP server's resource) and for
// admission, which reads a literal target argument (a URL, a variable
// name) to derive a step's profile.

// Targets an argument can name, which admission checks when the argument
// is a literal.
const (
	// TargetURL: the argument is the URL a call reaches (its host is
	// checked against the network allowlist).
	TargetURL = "url"
	// TargetMethod: the argument is the HTTP method of the call.
	TargetMethod = "method"
	// TargetEnvVar: the argument names an environment variable.
	TargetEnvVar = "env_var"
	// TargetPath: the argument is a host file system path.
	TargetPath = "path"
)

// Arg describes one argument of a capability.
type Arg struct {
	Name string `json:"name"`
	// Type is the RTFS type the argument takes: string, number, map,
	// string-or-keyword, any.
	Type string `json:"type"`
	Doc  string `json:"doc"`
	// Optional arguments may be left out; a Variadic one (the last) may
	// be repeated.
	Optional bool `json:"optional,omitempty"`
	Variadic bool `json:"variadic,omitempty"`
	// Target says what a literal value names (TargetURL, TargetMethod,
	// TargetEnvVar, TargetPath); "" for an argument admission does not
	// read.
	Target string `json:"target,omitempty"`
	// Keys describe the keys of a map argument.
	Keys []Arg `json:"keys,omitempty"`
}

// description is the documentation of one built-in.
type description struct {
	args    []Arg
	returns string
	example string
}

var builtinDescriptions = map[string]description{
	"ccos.io.read-file": {
		args:    []Arg{{Name: "path", Type: "string", Doc: "a path inside the step's own workdir (not a host path)"}},
		returns: "the file's text (at most 16 MiB)",
		example: `(step "read" (call :ccos.io.read-file "notes.txt"))`,
	},
	"ccos.io.write-file": {
		args: []Arg{{Name: "path", Type: "string", Doc: "a path inside the step's own workdir"},
			{Name: "content", Type: "string", Doc: "the text to write"}},
		returns: "nil",
		example: `(step "write" (call :ccos.io.write-file "notes.txt" "hello"))`,
	},
	"ccos.io.list-dir": {
		args:    []Arg{{Name: "path", Type: "string", Doc: `a directory inside the step's workdir ("." when left out)`, Optional: true}},
		returns: "a vector of names, sorted",
		example: `(step "list" (call :ccos.io.list-dir "."))`,
	},
	"ccos.io.delete-file": {
		args:    []Arg{{Name: "path", Type: "string", Doc: "a path inside the step's own workdir"}},
		returns: "nil",
		example: `(step "clean" (call :ccos.io.delete-file "notes.txt"))`,
	},
	"ccos.json.parse": {
		args:    []Arg{{Name: "text", Type: "string", Doc: "JSON text"}},
		returns: "the value (object keys become keywords)",
		example: `(call :ccos.json.parse "{\"a\": 1}")`,
	},
	"ccos.json.serialize": {
		args:    []Arg{{Name: "value", Type: "any", Doc: "a value made of maps, vectors, strings, numbers, booleans and nil"}},
		returns: "JSON text",
		example: `(call :ccos.json.serialize {:a 1})`,
	},
	"ccos.network.http-fetch": {
		args: []Arg{
			{Name: "url", Type: "string", Doc: "an http:// or https:// URL whose host is in the agent's allowlist", Target: TargetURL},
			{Name: "options", Type: "map", Optional: true, Doc: "request options", Keys: []Arg{
				{Name: "method", Type: "string-or-keyword", Doc: `"GET" (default), "POST", ...`, Optional: true, Target: TargetMethod},
				{Name: "headers", Type: "map", Doc: "header names to string values", Optional: true},
				{Name: "body", Type: "string", Doc: "the request body", Optional: true},
			}},
		},
		returns: `{:status 200 :headers {"content-type" "..."} :body "..."} (body at most 1 MiB)`,
		example: `(step "get" (get (call :ccos.network.http-fetch "https://api.example.com/items") :body))`,
	},
	"ccos.system.get-env": {
		args:    []Arg{{Name: "name", Type: "string-or-keyword", Doc: "a variable named in the config's :capabilities :env :vars", Target: TargetEnvVar}},
		returns: "the variable's value, or nil when it is unset",
		example: `(step "tz" (call :ccos.system.get-env "TZ"))`,
	},
	"ccos.echo": {
		args:    []Arg{{Name: "value", Type: "any", Doc: "any value"}},
		returns: "the value",
		example: `(call :ccos.echo "hi")`,
	},
	"ccos.math.add": {
		args:    []Arg{{Name: "numbers", Type: "number", Doc: "integers or floats", Variadic: true}},
		returns: "their sum (an integer unless a float is given)",
		example: `(call :ccos.math.add 1 2 3)`,
	},
	"ccos.string.concat": {
		args:    []Arg{{Name: "strings", Type: "string", Doc: "strings to join", Variadic: true}},
		returns: "the joined string",
		example: `(call :ccos.string.concat "Hello, " "world")`,
	},
	"ccos.system.current-time": {
		returns: "the host's current time, an RFC 3339 timestamp",
		example: `(step "now" (call :ccos.system.current-time))`,
	},
}

// describe fills in the documentation of the built-ins of r.
func describe(r *Registry) *Registry {
	for id, d := range builtinDescriptions {
		if c, ok := r.caps[id]; ok {
			c.Args, c.Returns, c.Example = d.args, d.returns, d.example
		}
	}
	return r
}

// TargetArgs returns the arguments (at their position) and option keys of
// c whose literal values admission reads: position -1 with a key for an
// option of a map argument.
func (c *Capability) TargetArgs() []ArgTarget {
	var out []ArgTarget
	for i, a := range c.Args {
		if a.Target != "" {
			out = append(out, ArgTarget{Index: i, Target: a.Target, Name: a.Name})
		}
		for _, k := range a.Keys {
			if k.Target != "" {
				out = append(out, ArgTarget{Index: i, Key: k.Name, Target: k.Target, Name: a.Name + " :" + k.Name})
			}
		}
	}
	return out
}

// ArgTarget is where a capability's call carries a target: argument Index
// itself, or its map's Key.
type ArgTarget struct {
	Index  int
	Key    string
	Target string
	// Name names it for people: "url", "options :method".
	Name string
}
