// The detection lab's IAM evaluator: reads one JSON request per line on stdin and writes
// one JSON decision per line on stdout, in order, using @cloud-copilot/iam-simulate (which
// checks the action, the resource type and the condition keys against AWS's reference
// data and evaluates every condition operator).
//
// Request:  {"id": 1, "principal": "arn:aws:iam::123456789012:user/AKIDINJECT",
//            "account": "123456789012", "policy": {...identity policy...},
//            "scp": {...} | null, "action": "ec2:RevokeSecurityGroupIngress",
//            "resource": "arn:aws:ec2:...:security-group/sg-1" | "*",
//            "context": {"aws:ResourceTag/chaoslingr:opt-in": "true", "aws:TagKeys": [..]}}
// Decision: {"id": 1, "result": "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied",
//            "allowed": bool, "explicit_deny": bool,
//            "matched": [{"policy": "identity", "sid": "...", "effect": "Allow"}],
//            "explain": [...statements whose action applies, and why they did or did not
//            match...], "ignored_context_keys": [...], "error": null | "..."}
//
// Installed by `infra/iam.sh install` into infra/.node (CHAOSLINGR_IAM_NODE_DIR overrides).

import { createRequire } from 'node:module'
import { createInterface } from 'node:readline'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const nodeDir = process.env.CHAOSLINGR_IAM_NODE_DIR || path.join(here, '..', '.node')
let simulate
try {
  const require = createRequire(path.join(nodeDir, 'package.json'))
  simulate = await import(pathToFileURL(require.resolve('@cloud-copilot/iam-simulate')).href)
} catch (e) {
  process.stderr.write(
    `iam evaluator: @cloud-copilot/iam-simulate is not installed in ${nodeDir}; run infra/iam.sh install (${e.message})\n`
  )
  process.exit(3)
}

const FULL_ACCESS = {
  Version: '2012-10-17',
  Statement: [{ Sid: 'FullAWSAccess', Effect: 'Allow', Action: '*', Resource: '*' }]
}

function statementsOf(analysis, policy) {
  if (!analysis) return { allow: [], deny: [], unmatched: [] }
  const pick = (list) => (list || []).map((s) => ({ policy, analysis: s }))
  return {
    allow: pick(analysis.allowStatements),
    deny: pick(analysis.denyStatements),
    unmatched: pick(analysis.unmatchedStatements)
  }
}

function summary({ policy, analysis }) {
  return { policy, sid: analysis.statement?.sid?.() ?? analysis.explain?.identifier ?? null, effect: analysis.explain?.effect }
}

function explainOf({ policy, analysis }) {
  const e = analysis.explain || {}
  const conditions = (e.conditions || []).map((c) => ({
    operator: c.operator,
    key: c.conditionKeyValue,
    values: c.values,
    matches: c.matches,
    ...(c.failedBecauseMissing ? { missing: true } : {})
  }))
  return {
    policy,
    sid: e.identifier ?? null,
    effect: e.effect,
    matches: e.matches,
    resource_match: e.resourceMatch,
    condition_match: e.conditionMatch,
    conditions
  }
}

async function decide(req) {
  const account = req.account || '123456789012'
  const simulation = {
    request: {
      principal: req.principal,
      action: req.action,
      resource: { resource: req.resource || '*', accountId: account },
      contextVariables: req.context || {}
    },
    identityPolicies: [{ name: 'identity', policy: req.policy }],
    serviceControlPolicies: req.scp
      ? [
          { orgIdentifier: 'r-lab', policies: [{ name: 'FullAWSAccess', policy: FULL_ACCESS }] },
          {
            orgIdentifier: account,
            policies: [
              { name: 'FullAWSAccess', policy: FULL_ACCESS },
              { name: 'scp', policy: req.scp }
            ]
          }
        ]
      : [],
    resourceControlPolicies: []
  }
  const response = await simulate.runSimulation(simulation, {})
  if (response.resultType === 'error') {
    return {
      result: 'ImplicitlyDenied',
      allowed: false,
      explicit_deny: false,
      matched: [],
      explain: [],
      ignored_context_keys: [],
      error: response.errors.message + ': ' + JSON.stringify(response.errors)
    }
  }
  const results = response.resultType === 'single' ? [response.result] : response.results
  const result = response.overallResult
  const all = { allow: [], deny: [], unmatched: [] }
  const ignored = new Set()
  for (const r of results) {
    const a = r.analysis || {}
    for (const part of [statementsOf(a.identityAnalysis, 'identity')].concat(
      (a.scpAnalysis?.ouAnalysis || []).map((ou) => statementsOf(ou, `scp:${ou.orgIdentifier}`))
    )) {
      all.allow.push(...part.allow)
      all.deny.push(...part.deny)
      all.unmatched.push(...part.unmatched)
    }
    for (const k of r.ignoredContextKeys || []) ignored.add(k)
  }
  const matched = result === 'ExplicitlyDenied' ? all.deny : result === 'Allowed' ? all.allow.filter((s) => s.policy === 'identity') : []
  return {
    result,
    allowed: result === 'Allowed',
    explicit_deny: result === 'ExplicitlyDenied',
    matched: matched.map(summary),
    explain: all.allow
      .concat(all.deny, all.unmatched)
      .filter((s) => s.policy === 'identity' || s.analysis.explain?.effect === 'Deny')
      .filter((s) => s.analysis.actionMatch)
      .map(explainOf),
    ignored_context_keys: [...ignored],
    error: null
  }
}

// Decisions are written in the order the requests came, one line each.
let queue = Promise.resolve()
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
lines.on('line', (line) => {
  if (!line.trim()) return
  queue = queue.then(async () => {
    let id = null
    let out
    try {
      const req = JSON.parse(line)
      id = req.id ?? null
      out = await decide(req)
    } catch (e) {
      out = {
        result: 'ImplicitlyDenied',
        allowed: false,
        explicit_deny: false,
        matched: [],
        explain: [],
        ignored_context_keys: [],
        error: String(e?.stack || e)
      }
    }
    process.stdout.write(JSON.stringify({ id, ...out }) + '\n')
  })
})
lines.on('close', () => queue.then(() => process.exit(0)))
