// Package docs holds the documents ccos serves itself: the plan guide
// (PLANS.md), which the MCP server offers to models as a resource.
package docs

import _ "embed"

// Plans is docs/PLANS.md: how to write a plan, for models and people.
//
//go:embed PLANS.md
var Plans string
