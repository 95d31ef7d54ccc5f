package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/snapshot"
	"github.com/urfave/cli/v2"
)

func completionCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Description: "Prints a completion script generated from snap's commands and flags. Install it with:\n" +
			"  bash: snap completion bash > /etc/bash_completion.d/snap\n" +
			"  zsh:  snap completion zsh > \"${fpath[1]}/_snap\"\n" +
			"  fish: snap completion fish > ~/.config/fish/completions/snap.fish\n" +
			"Job names of the config file are completed after 'snap run' and 'snap schedule install|remove'.",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("usage: snap completion bash|zsh|fish")
			}
			spec := cliSpec(e)
			switch c.Args().First() {
			case "bash":
				writeBashCompletion(e.stdout, spec)
			case "zsh":
				writeZshCompletion(e.stdout, spec)
			case "fish":
				writeFishCompletion(e.stdout, spec)
			default:
				return usagef("unknown shell %q: use bash, zsh or fish", c.Args().First())
			}
			return nil
		},
	}
}

// cmdSpec is the part of the CLI definition that completion needs.
type cmdSpec struct {
	path string // "" for the top level, "schedule install" for a subcommand
	// aliases are the other paths that name the command ("backup" for
	// create): the shells must recognise them on the line too.
	aliases []string
	usage   string
	subs    []*cmdSpec
	flags   []flagSpec
}

type flagSpec struct {
	long, short string // without dashes; short may be ""
	value       bool   // takes a value
	usage       string
	files       bool     // its value is a file or directory
	choices     []string // its value is one of these
}

// fileFlags take a path as their value.
var fileFlags = map[string]bool{"repo": true, "password-file": true, "config": true, "cache-dir": true, "target": true, "dir": true}

// choiceFlags take one of a few words as their value.
func choiceFlags() map[string][]string {
	return map[string][]string{"compression": repo.CompressionNames(), "overwrite": snapshot.OverwriteNames()}
}

// jobArgCommands take job names as arguments: the flags of 'config jobs'
// that list the names each one is offered.
var jobArgCommands = map[string]string{"run": "--names", "schedule install": "--names --scheduled", "schedule remove": "--names"}

// cliSpec builds the command tree from the same definitions the app uses.
// The global flags belong to the top level and are offered everywhere.
func cliSpec(e *env) *cmdSpec {
	root := &cmdSpec{flags: flagSpecs(globalFlags(false))}
	var add func(parent *cmdSpec, cmds []*cli.Command)
	add = func(parent *cmdSpec, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden {
				continue
			}
			p := strings.TrimSpace(parent.path + " " + c.Name)
			s := &cmdSpec{path: p, usage: c.Usage, flags: flagSpecs(c.Flags)}
			for _, a := range c.Aliases {
				s.aliases = append(s.aliases, strings.TrimSpace(parent.path+" "+a))
			}
			parent.subs = append(parent.subs, s)
			add(s, c.Subcommands)
		}
	}
	add(root, commands(e))
	return root
}

func flagSpecs(flags []cli.Flag) []flagSpec {
	var out []flagSpec
	choices := choiceFlags()
	for _, f := range flags {
		if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
			continue
		}
		fs := flagSpec{}
		for _, n := range f.Names() {
			if len(n) == 1 {
				fs.short = n
			} else if fs.long == "" {
				fs.long = n
			}
		}
		if df, ok := f.(cli.DocGenerationFlag); ok {
			fs.value = df.TakesValue()
			// The library's placeholder quotes (`SIZE`) mean nothing in
			// a shell's description.
			fs.usage = strings.ReplaceAll(df.GetUsage(), "`", "")
		}
		fs.files = fileFlags[fs.long]
		fs.choices = choices[fs.long]
		out = append(out, fs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].long < out[j].long })
	return out
}

// paths are the words that name the command on a line: its path and its
// aliases' (none for the top level).
func (s *cmdSpec) paths() []string {
	if s.path == "" {
		return nil
	}
	return append([]string{s.path}, s.aliases...)
}

// walk visits every command below s (s included).
func (s *cmdSpec) walk(fn func(*cmdSpec)) {
	fn(s)
	for _, c := range s.subs {
		c.walk(fn)
	}
}

func (s *cmdSpec) flagWords(global []flagSpec) []string {
	var out []string
	for _, f := range append(append([]flagSpec{}, s.flags...), global...) {
		if f.long != "" {
			out = append(out, "--"+f.long)
		}
		if f.short != "" {
			out = append(out, "-"+f.short)
		}
	}
	return out
}

func (s *cmdSpec) subNames() []string {
	var out []string
	for _, c := range s.subs {
		out = append(out, c.path[strings.LastIndex(c.path, " ")+1:])
	}
	return out
}

// choiceCases is a shell case pattern and the words it offers for each
// flag that takes one of a few words, in order: format(pattern, words).
func (s *cmdSpec) choiceCases(format func(pattern, words string) string) string {
	seen := map[string]bool{}
	var out []string
	s.walk(func(c *cmdSpec) {
		for _, f := range c.flags {
			if len(f.choices) == 0 || seen[f.long] {
				continue
			}
			seen[f.long] = true
			pattern := "--" + f.long
			if f.short != "" {
				pattern += "|-" + f.short
			}
			out = append(out, format(pattern, strings.Join(f.choices, " ")))
		}
	})
	sort.Strings(out)
	return strings.Join(out, "")
}

// valueFlags lists every flag that takes a value, and those whose value
// is a path.
func (s *cmdSpec) valueFlags() (values, files []string) {
	seen := map[string]bool{}
	s.walk(func(c *cmdSpec) {
		for _, f := range c.flags {
			for _, n := range []string{"--" + f.long, "-" + f.short} {
				if n == "-" || n == "--" || seen[n] || !f.value {
					continue
				}
				seen[n] = true
				values = append(values, n)
				if f.files {
					files = append(files, n)
				}
			}
		}
	})
	sort.Strings(values)
	sort.Strings(files)
	return values, files
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func writeBashCompletion(w io.Writer, root *cmdSpec) {
	values, files := root.valueFlags()
	fmt.Fprintf(w, `# bash completion for snap; generated by 'snap completion bash'.
_snap() {
    local cur prev path="" i w skip=0 words cfg=()
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${COMP_WORDS[i]}"
        if ((skip)); then
            [[ $w == = ]] && continue # --config=FILE, split at "=" by bash
            skip=0
            [[ ${COMP_WORDS[i-1]} == --config || ${COMP_WORDS[i-2]} == --config ]] && cfg=(--config "${w/#\~/$HOME}")
            continue
        fi
        case " %s " in *" $w "*) skip=1; continue ;; esac
        [[ $w == --config=* ]] && cfg=(--config "${w#--config=}") # where "=" breaks no word
        [[ $w == -* ]] && continue
        case "${path:+$path }$w" in
`, strings.Join(values, " "))
	root.walk(func(c *cmdSpec) {
		for _, p := range c.paths() {
			fmt.Fprintf(w, "            %s) path=%s ;;\n", shQuote(p), shQuote(c.path))
		}
	})
	fmt.Fprintf(w, `        esac
    done
    case "$prev" in
%s    esac
    case " %s " in *" $prev "*) COMPREPLY=($(compgen -f -- "$cur")); return ;; esac
    case " %s " in *" $prev "*) return ;; esac
    case "$path" in
`, root.choiceCases(func(pattern, words string) string {
		return fmt.Sprintf("        %s) COMPREPLY=($(compgen -W %s -- \"$cur\")); return ;;\n", pattern, shQuote(words))
	}), strings.Join(files, " "), strings.Join(values, " "))
	root.walk(func(c *cmdSpec) {
		fmt.Fprintf(w, "        %s)\n", shQuote(c.path))
		if c.path == "" {
			fmt.Fprintf(w, "            if [[ $cur == -* ]]; then words=%s; else words=%s; fi ;;\n",
				shQuote(strings.Join(c.flagWords(nil), " ")), shQuote(strings.Join(c.subNames(), " ")))
			return
		}
		args := strings.Join(c.subNames(), " ")
		extra := ""
		switch {
		case jobArgCommands[c.path] != "":
			extra = `" $("${COMP_WORDS[0]}" "${cfg[@]}" config jobs ` + jobArgCommands[c.path] + ` 2>/dev/null)"`
		case c.path == "completion":
			args = "bash zsh fish"
		}
		fmt.Fprintf(w, "            if [[ $cur == -* ]]; then words=%s; else words=%s%s; fi ;;\n",
			shQuote(strings.Join(c.flagWords(root.flags), " ")), shQuote(args), extra)
	})
	fmt.Fprint(w, `    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _snap snap
`)
}

func zshSpec(name, usage string) string {
	r := strings.NewReplacer(`\`, `\\`, `:`, `\:`, `'`, `'\''`)
	return "'" + r.Replace(name) + ":" + strings.ReplaceAll(usage, "'", `'\''`) + "'"
}

func writeZshCompletion(w io.Writer, root *cmdSpec) {
	values, files := root.valueFlags()
	fmt.Fprintf(w, `#compdef snap
# zsh completion for snap; generated by 'snap completion zsh'.
_snap() {
    local cur=${words[CURRENT]} prev=${words[CURRENT-1]} cmdpath="" w skip=0 i
    local -a subs flags jobs cfg
    for ((i = 2; i < CURRENT; i++)); do
        w=${words[i]}
        if ((skip)); then
            skip=0
            [[ ${words[i-1]} == --config ]] && cfg=(--config "${w/#\~/$HOME}")
            continue
        fi
        [[ $w == --config=* ]] && cfg=(--config "${${w#--config=}/#\~/$HOME}")
        case " %s " in (*" $w "*) skip=1; continue ;; esac
        [[ $w == -* ]] && continue
        case "${cmdpath:+$cmdpath }$w" in
`, strings.Join(values, " "))
	root.walk(func(c *cmdSpec) {
		for _, p := range c.paths() {
			fmt.Fprintf(w, "            (%s) cmdpath=%s ;;\n", shQuote(p), shQuote(c.path))
		}
	})
	fmt.Fprintf(w, `        esac
    done
    case $prev in
%s    esac
    case " %s " in (*" $prev "*) _files; return ;; esac
    case " %s " in (*" $prev "*) return ;; esac
    case $cmdpath in
`, root.choiceCases(func(pattern, words string) string {
		return fmt.Sprintf("        (%s) compadd %s; return ;;\n", pattern, words)
	}), strings.Join(files, " "), strings.Join(values, " "))
	root.walk(func(c *cmdSpec) {
		fmt.Fprintf(w, "        (%s)\n", shQuote(c.path))
		var subs []string
		for _, s := range c.subs {
			subs = append(subs, zshSpec(s.path[strings.LastIndex(s.path, " ")+1:], s.usage))
		}
		if c.path == "completion" {
			subs = []string{zshSpec("bash", "bash"), zshSpec("zsh", "zsh"), zshSpec("fish", "fish")}
		}
		var flags []string
		global := root.flags
		if c.path == "" {
			global = nil
		}
		for _, f := range append(append([]flagSpec{}, c.flags...), global...) {
			if f.long != "" {
				flags = append(flags, zshSpec("--"+f.long, f.usage))
			}
			if f.short != "" {
				flags = append(flags, zshSpec("-"+f.short, f.usage))
			}
		}
		fmt.Fprintf(w, "            subs=(%s)\n", strings.Join(subs, " "))
		fmt.Fprintf(w, "            flags=(%s)\n", strings.Join(flags, " "))
		if names := jobArgCommands[c.path]; names != "" {
			fmt.Fprintf(w, "            jobs=(${(f)\"$(${words[1]} \"${cfg[@]}\" config jobs %s 2>/dev/null)\"})\n", names)
		}
		fmt.Fprint(w, "            ;;\n")
	})
	fmt.Fprint(w, `    esac
    if [[ $cur == -* ]]; then
        _describe -t flags 'flag' flags
    elif (( ${#subs} )); then
        _describe -t commands 'command' subs
    elif (( ${#jobs} )); then
        compadd -a jobs
    else
        _files
    fi
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _snap "$@"
else
    compdef _snap snap
fi
`)
}

func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func writeFishCompletion(w io.Writer, root *cmdSpec) {
	fmt.Fprint(w, "# fish completion for snap; generated by 'snap completion fish'.\n")
	// Fish may have loaded completions for another program called snap
	// (Canonical's, which Debian's fish ships); they would run it.
	fmt.Fprint(w, "complete -c snap -e\n")
	fmt.Fprint(w, "function __snap_config --description 'the --config given on the line so far'\n")
	fmt.Fprint(w, "    set -l words (commandline -opc)\n    for i in (seq 2 (count $words))\n")
	fmt.Fprint(w, "        set -l file\n")
	fmt.Fprint(w, "        if test \"$words[$i]\" = --config; and test $i -lt (count $words)\n            set file $words[(math $i + 1)]\n")
	fmt.Fprint(w, "        else if string match -q -- '--config=*' $words[$i]\n            set file (string replace -- '--config=' '' $words[$i])\n        end\n")
	fmt.Fprint(w, "        if test -n \"$file\"\n            echo --config\n            string replace -r -- '^~' $HOME $file\n        end\n    end\nend\n")
	fmt.Fprint(w, "function __snap_path --description 'the snap command on the line so far'\n")
	fmt.Fprint(w, "    set -l words (commandline -opc)\n    set -l path\n    for w in $words[2..-1]\n")
	fmt.Fprint(w, "        switch \"$path $w\"\n")
	root.walk(func(c *cmdSpec) {
		for _, pattern := range c.paths() {
			if !strings.Contains(pattern, " ") {
				pattern = " " + pattern // "$path $w" with an empty path
			}
			fmt.Fprintf(w, "            case %s\n                set path %s\n", fishQuote(pattern), fishQuote(c.path))
		}
	})
	fmt.Fprint(w, "        end\n    end\n    echo \"$path\"\nend\n")
	fmt.Fprint(w, "function __snap_at --argument-names want\n    test (__snap_path) = \"$want\"\nend\n")
	root.walk(func(c *cmdSpec) {
		cond := fishQuote("__snap_at " + fishQuote(c.path))
		for _, s := range c.subs {
			fmt.Fprintf(w, "complete -c snap -f -n %s -a %s -d %s\n", cond, fishQuote(s.path[strings.LastIndex(s.path, " ")+1:]), fishQuote(s.usage))
		}
		if c.path == "completion" {
			fmt.Fprintf(w, "complete -c snap -f -n %s -a 'bash zsh fish'\n", cond)
		}
		if names := jobArgCommands[c.path]; names != "" {
			fmt.Fprintf(w, "complete -c snap -f -n %s -a '(snap (__snap_config) config jobs %s 2>/dev/null)'\n", cond, names)
		}
		for _, f := range c.flags {
			line := "complete -c snap"
			if c.path != "" {
				line += " -n " + cond
			}
			if f.long != "" {
				line += " -l " + f.long
			}
			if f.short != "" {
				line += " -s " + f.short
			}
			if f.value {
				line += " -r"
				switch {
				case f.files:
					line += " -F"
				case len(f.choices) > 0:
					line += " -f -a " + fishQuote(strings.Join(f.choices, " "))
				}
			}
			fmt.Fprintf(w, "%s -d %s\n", line, fishQuote(f.usage))
		}
	})
}
