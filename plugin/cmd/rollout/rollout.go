// Package rollout holds the rollout command and its subcommands: status,
// history, undo, restart, pause, resume and plan of an InferServer's rollout.
package rollout

import (
	"github.com/spf13/cobra"

	"mindie.io/deployer/plugin/options"
)

// NewCmdRollout returns the rollout command and its subcommands.
func NewCmdRollout(mindie *options.MindieOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "rollout SUBCOMMAND",
		Short: "Manage the rollout of an InferServer: status, history, undo, restart, pause, resume, plan",
		Long: `Manage the rollout of an InferServer's instances, as kubectl rollout does for
Deployments. Every change of the instance template (anything in spec but
replicas, strategy, paused, revisionHistoryLimit and service) is a revision,
stored as a ControllerRevision owned by the InferServer.`,
		Example: `  kubectl mindie rollout restart llama3
  kubectl mindie rollout status llama3
  kubectl mindie rollout history llama3
  kubectl mindie rollout undo llama3 --to-revision=2`,
		Run: func(c *cobra.Command, _ []string) { _ = c.Help() },
	}
	c.AddCommand(
		newRolloutStatusCommand(mindie),
		newRolloutHistoryCommand(mindie),
		newRolloutUndoCommand(mindie),
		newRolloutRestartCommand(mindie),
		newRolloutPauseCommand(mindie, true),
		newRolloutPauseCommand(mindie, false),
		newRolloutPlanCommand(mindie),
	)
	return c
}
