#!/usr/bin/env node
// The official Agones Node.js SDK (@google-cloud/agones-sdk, pinned in package.json) driving a
// game server's SDK sidecar, as an unchanged Agones game server would. tests/compat/test_node_sdk.py
// runs it and asserts, from Python, what reached the store.
//
// Usage: node node_sdk_client.js [all|late]
//   all   every method of the three services (agones.dev.sdk.SDK, .alpha.SDK, .beta.SDK) in a fixed order
//   late  connect (the sidecar may start after us), getGameServer, ready, a few health pings
//
// The port comes from AGONES_SDK_GRPC_PORT (the SDK reads it itself). Output: one JSON line per step,
// {"step": name, "result": value}; a failed call gives {"step": name, "error": {"code", "details"}}.
// Expected refusals are steps too (their error is the result under test). Exit 0 once every step ran;
// 1 on an unexpected failure (the line {"step": "fatal", ...} says which).

"use strict";

const AgonesSDK = require("@google-cloud/agones-sdk");

const STATE_TIMEOUT_MS = 15000;
const HEALTH_INTERVAL_MS = 100;

function emit(step, fields) {
	process.stdout.write(`${JSON.stringify({ step, ...fields })}\n`);
}

function errorOf(err) {
	return { code: err && err.code !== undefined ? err.code : null, details: err ? String(err.details || err.message) : "" };
}

// One step: the awaited result is printed; a rejection is printed too when `expectError`, else it is fatal.
async function step(name, fn, { expectError = false } = {}) {
	try {
		const result = await fn();
		emit(name, { result: result === undefined ? null : result });
		if (expectError) {
			throw new Error(`${name}: expected an error, got ${JSON.stringify(result)}`);
		}
		return result;
	} catch (err) {
		if (!expectError || (err instanceof Error && err.message.startsWith(`${name}: expected an error`))) {
			throw err;
		}
		emit(name, { error: errorOf(err) });
		return undefined;
	}
}

function pairs(map) {
	return Object.fromEntries(map || []);
}

// The parts of a GameServer (google-protobuf toObject(): camelCase, maps as pairs) the test checks.
function summary(gs) {
	const meta = gs.objectMeta || {};
	const status = gs.status || {};
	const counters = {};
	for (const [name, c] of status.countersMap || []) counters[name] = { count: c.count, capacity: c.capacity };
	const lists = {};
	for (const [name, l] of status.listsMap || []) lists[name] = { capacity: l.capacity, values: l.valuesList };
	return {
		name: meta.name,
		namespace: meta.namespace,
		uid: meta.uid,
		resourceVersion: meta.resourceVersion,
		generation: meta.generation,
		creationTimestamp: meta.creationTimestamp,
		labels: pairs(meta.labelsMap),
		annotations: pairs(meta.annotationsMap),
		state: status.state,
		address: status.address,
		ports: (status.portsList || []).map((p) => ({ name: p.name, port: p.port })),
		players: status.players ? { count: status.players.count, capacity: status.players.capacity, ids: status.players.idsList } : null,
		counters,
		lists,
		health: gs.spec && gs.spec.health ? gs.spec.health : null,
	};
}

// Watch updates, and waiting for one that satisfies a predicate (only updates after `from` count).
class Watch {
	constructor() {
		this.updates = [];
		this.waiters = [];
		this.error = null;
	}

	onUpdate(gs) {
		this.updates.push(summary(gs));
		this.waiters = this.waiters.filter((w) => !w.check());
	}

	onError(err) {
		// Cancelled (code 1) is our own close(); anything else is recorded for the summary.
		if (err && err.code !== 1) this.error = errorOf(err);
	}

	get mark() {
		return this.updates.length;
	}

	waitFor(what, predicate, from = 0) {
		return new Promise((resolve, reject) => {
			const waiter = {
				check: () => {
					const i = this.updates.findIndex((u, index) => index >= from && predicate(u));
					if (i < 0) return false;
					clearTimeout(waiter.timer);
					resolve(this.updates[i]);
					return true;
				},
			};
			if (waiter.check()) return;
			waiter.timer = setTimeout(() => {
				this.waiters = this.waiters.filter((w) => w !== waiter);
				const seen = this.updates.slice(from).map((u) => u.state);
				reject(new Error(`watch: no update with ${what} within ${STATE_TIMEOUT_MS} ms (states since: ${seen})`));
			}, STATE_TIMEOUT_MS);
			this.waiters.push(waiter);
		});
	}

	state(state, from) {
		return this.waitFor(`state ${state}`, (u) => u.state === state, from).then((u) => u.state);
	}
}

// Health pings on the SDK's one client stream, counted, until stopped.
class Pinger {
	constructor(sdk) {
		this.sdk = sdk;
		this.sent = 0;
		this.errors = [];
		this.timer = null;
	}

	ping() {
		this.sdk.health((err) => this.errors.push(errorOf(err)));
		this.sent += 1;
	}

	start() {
		this.ping();
		this.timer = setInterval(() => this.ping(), HEALTH_INTERVAL_MS);
	}

	// Half-close the stream and wait for the server's answer (Empty, status OK).
	async stop() {
		clearInterval(this.timer);
		const stream = this.sdk.healthStream;
		if (stream === undefined) return { sent: this.sent, status: null, errors: this.errors };
		const status = await new Promise((resolve) => {
			const timer = setTimeout(() => resolve(null), STATE_TIMEOUT_MS);
			stream.on("status", (s) => {
				clearTimeout(timer);
				resolve(s.code);
			});
			stream.end();
		});
		this.sdk.healthStream = undefined; // ended: close() must not end it twice
		return { sent: this.sent, status, errors: this.errors };
	}
}

async function sdkCalls(sdk, watch) {
	await step("getGameServer", async () => summary(await sdk.getGameServer()));
	await step("setLabel", () => sdk.setLabel("mode", "ctf"));
	await step("setAnnotation", () => sdk.setAnnotation("map", "de_dust"));
	await step("setLabel.invalid", () => sdk.setLabel("not a key", "v"), { expectError: true });
	let from = watch.mark;
	await step("ready", () => sdk.ready());
	await step("watch.ready", () => watch.state("Ready", from));
	await step("getGameServer.ready", async () => summary(await sdk.getGameServer()));
	from = watch.mark;
	await step("reserve", () => sdk.reserve(1));
	await step("watch.reserved", () => watch.state("Reserved", from));
	from = watch.mark;
	await step("watch.reserve_expired", () => watch.state("Ready", from));
}

async function alphaCalls(alpha) {
	await step("alpha.setPlayerCapacity", () => alpha.setPlayerCapacity(2));
	await step("alpha.getPlayerCapacity", () => alpha.getPlayerCapacity());
	await step("alpha.playerConnect", () => alpha.playerConnect("p1"));
	await step("alpha.playerConnect.again", () => alpha.playerConnect("p1"));
	await step("alpha.playerConnect.second", () => alpha.playerConnect("p2"));
	await step("alpha.playerConnect.full", () => alpha.playerConnect("p3"), { expectError: true });
	await step("alpha.isPlayerConnected", () => alpha.isPlayerConnected("p1"));
	await step("alpha.getPlayerCount", () => alpha.getPlayerCount());
	await step("alpha.getConnectedPlayers", async () => (await alpha.getConnectedPlayers()).slice().sort());
	await step("alpha.playerDisconnect", () => alpha.playerDisconnect("p2"));
	await step("alpha.playerDisconnect.again", () => alpha.playerDisconnect("p2"));
	await step("alpha.isPlayerConnected.gone", () => alpha.isPlayerConnected("p2"));
	await step("alpha.getPlayerCount.after", () => alpha.getPlayerCount());
}

async function betaCalls(beta) {
	await step("beta.getCounterCount", () => beta.getCounterCount("rooms"));
	await step("beta.getCounterCapacity", () => beta.getCounterCapacity("rooms"));
	await step("beta.incrementCounter", () => beta.incrementCounter("rooms", 3));
	await step("beta.decrementCounter", () => beta.decrementCounter("rooms", 1));
	await step("beta.getCounterCount.diffs", () => beta.getCounterCount("rooms"));
	await step("beta.setCounterCount", () => beta.setCounterCount("rooms", 5));
	await step("beta.setCounterCapacity", () => beta.setCounterCapacity("rooms", 20));
	await step("beta.getCounterCount.set", () => beta.getCounterCount("rooms"));
	await step("beta.getCounterCapacity.set", () => beta.getCounterCapacity("rooms"));
	await step("beta.setCounterCount.too_high", () => beta.setCounterCount("rooms", 21), { expectError: true });
	await step("beta.getCounterCount.missing", () => beta.getCounterCount("no-such-counter"), { expectError: true });
	await step("beta.getListCapacity", () => beta.getListCapacity("players"));
	await step("beta.setListCapacity", () => beta.setListCapacity("players", 50));
	await step("beta.getListCapacity.set", () => beta.getListCapacity("players"));
	await step("beta.appendListValue", () => beta.appendListValue("players", "alice"));
	await step("beta.appendListValue.second", () => beta.appendListValue("players", "bob"));
	await step("beta.appendListValue.duplicate", () => beta.appendListValue("players", "bob"), { expectError: true });
	await step("beta.listContains", () => beta.listContains("players", "alice"));
	await step("beta.getListLength", () => beta.getListLength("players"));
	await step("beta.getListValues", () => beta.getListValues("players"));
	await step("beta.deleteListValue", () => beta.deleteListValue("players", "alice"));
	await step("beta.deleteListValue.missing", () => beta.deleteListValue("players", "alice"), { expectError: true });
	await step("beta.listContains.deleted", () => beta.listContains("players", "alice"));
	await step("beta.getListValues.after", () => beta.getListValues("players"));
	await step("beta.getListLength.missing", () => beta.getListLength("no-such-list"), { expectError: true });
}

async function runAll(sdk) {
	const watch = new Watch();
	const pinger = new Pinger(sdk);
	await step("connect", () => sdk.connect());
	sdk.watchGameServer(
		(gs) => watch.onUpdate(gs),
		(err) => watch.onError(err),
	);
	await step("watchGameServer", async () => (await watch.waitFor("a first update", () => true)).name);
	pinger.start();
	await sdkCalls(sdk, watch);
	await alphaCalls(sdk.alpha);
	await betaCalls(sdk.beta);
	let from = watch.mark;
	await step("allocate", () => sdk.allocate());
	await step("watch.allocated", () => watch.state("Allocated", from));
	await step("watch.counted", async () => {
		// The batched counter/list/player writes reach the store (and come back through the watch).
		const u = await watch.waitFor(
			"counters and lists written",
			// The final values, not just their number: a write may land between the two appends ([alice]).
			(x) => x.counters.rooms && x.counters.rooms.count === 5 && x.lists.players && x.lists.players.values.join() === "bob",
		);
		return { counters: u.counters, lists: u.lists, players: u.players };
	});
	await step("getGameServer.allocated", async () => summary(await sdk.getGameServer()));
	await step("health", () => pinger.stop());
	from = watch.mark;
	await step("shutdown", () => sdk.shutdown());
	await step("watch.shutdown", () => watch.state("Shutdown", from));
	await step("watch.summary", async () => ({
		updates: watch.updates.length,
		states: watch.updates.map((u) => u.state).filter((s, i, all) => i === 0 || all[i - 1] !== s),
		resourceVersions: new Set(watch.updates.map((u) => u.resourceVersion)).size,
		error: watch.error,
	}));
}

async function runLate(sdk) {
	const pinger = new Pinger(sdk);
	const started = Date.now();
	await step("connect", () => sdk.connect());
	await step("connect.waited_ms", async () => Date.now() - started);
	await step("getGameServer", async () => summary(await sdk.getGameServer()));
	await step("ready", () => sdk.ready());
	pinger.start();
	await new Promise((resolve) => setTimeout(resolve, 5 * HEALTH_INTERVAL_MS));
	await step("health", () => pinger.stop());
}

async function main() {
	const mode = process.argv[2] || "all";
	const sdk = new AgonesSDK();
	emit("start", { result: { mode, port: sdk.port } });
	try {
		await (mode === "late" ? runLate : runAll)(sdk);
		emit("done", { result: true });
	} finally {
		sdk.close();
		sdk.alpha.client.close();
		sdk.beta.client.close();
	}
}

main().then(
	() => process.exit(0),
	(err) => {
		emit("fatal", { error: errorOf(err), stack: err && err.stack ? String(err.stack) : "" });
		process.exit(1);
	},
);
