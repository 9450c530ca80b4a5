package main

import (
	"context"
	"fmt"
	"strings"
)

// completion joins the table at init: it lists the table itself.
func init() {
	commands = append(commands, command{"completion", "print a shell completion script: bash|zsh", runCompletion})
}

// runCompletion prints a shell completion script built from the command
// table, so it never lags behind the commands:
//
//	edgectl completion bash > /etc/bash_completion.d/edgectl
func runCompletion(_ context.Context, e *env, args []string) error {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: want a shell: completion bash|zsh", errUsage)
	}
	shell := args[0]
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	switch shell {
	case "bash":
		fmt.Fprintf(e.stdout, bashCompletion, strings.Join(names, " "))
	case "zsh":
		fmt.Fprintf(e.stdout, "autoload -U +X bashcompinit && bashcompinit\n"+bashCompletion, strings.Join(names, " "))
	default:
		return fmt.Errorf("%w: unknown shell %q (want bash or zsh)", errUsage, shell)
	}
	return nil
}

// bashCompletion completes the command, then files after -f and -o, the
// socket after --socket, and the flags every command takes.
const bashCompletion = `# bash completion for edgectl (edgectl completion bash)
_edgectl() {
	local cur prev cmd i
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	case $prev in
	-f|-o|--socket) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	esac
	cmd=
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--socket) ((i++)) ;;
		-*) ;;
		*) cmd=${COMP_WORDS[i]}; break ;;
		esac
	done
	if [[ -z $cmd ]]; then
		COMPREPLY=($(compgen -W "%s --socket --version --help" -- "$cur"))
		return
	fi
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "--json --help" -- "$cur"))
	fi
}
complete -F _edgectl edgectl
`
