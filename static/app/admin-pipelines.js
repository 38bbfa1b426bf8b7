// Admin: pipelines and their stages. Add a pipeline, rename it, make it the default (where new
// deals go), delete an unused one; add a stage, change its name, chance of winning, outcome
// (open, won, lost: deals in it follow) and when a deal in it counts as rotting, move it up or
// down, delete an unused one. The board (#/deals) shows the result at once.

import { h } from "/pane/dom.js";
import { adminApi } from "./admin-endpoints.js";
import { adminHeader, checkboxField, confirmDialog, formError } from "./admin-common.js";
import { href } from "./router.js";
import { announce, badge, button, field, formMessage, formShell, formValues, section, sentence, showErrors, toast } from "./ui.js";

const OUTCOMES = [
  { value: "open", label: "Open: the deal is still being worked on" },
  { value: "won", label: "Won" },
  { value: "lost", label: "Lost" },
];

function stageFields(stage = {}) {
  return [
    field({ name: "name", label: "Stage name", required: true, maxlength: 200, value: stage.name || "" }),
    h(
      "div",
      { class: "field-row" },
      field({
        name: "probability",
        label: "Chance of winning (%)",
        inputmode: "numeric",
        maxlength: 3,
        value: stage.probability ?? "",
        hint: "0 to 100.",
      }),
      field({
        name: "rot_days",
        label: "Rotting after (days)",
        inputmode: "numeric",
        maxlength: 4,
        value: stage.rot_days ?? "",
        hint: "Idle this long, a deal is flagged. Empty: never.",
      }),
    ),
    field({ name: "outcome", label: "Outcome", kind: "select", value: stage.outcome || "open", options: OUTCOMES }),
  ];
}

function stageBody(values) {
  const errors = {};
  const body = { name: values.name.trim(), outcome: values.outcome };
  if (!body.name) errors.name = "Give the stage a name.";
  else if (body.name.length > 200) errors.name = "At most 200 characters.";
  const probability = values.probability.trim();
  if (probability) {
    const n = Number(probability);
    if (!Number.isInteger(n) || n < 0 || n > 100) errors.probability = "A whole number from 0 to 100.";
    else body.probability = n;
  } else body.probability = values.outcome === "won" ? 100 : 0;
  const rot = values.rot_days.trim();
  if (rot) {
    const n = Number(rot);
    if (!Number.isInteger(n) || n < 1 || n > 3650) errors.rot_days = "A whole number of days, 1 to 3650; empty for never.";
    else body.rot_days = n;
  } else body.rot_days = null;
  return { body, errors };
}

const hidden = (text) => h("span", { class: "sr-only" }, text);

function stageItem(pipeline, stage, index, { redraw }) {
  const li = h("li", { class: "stage", dataset: { stage: stage.id } });
  const editBox = h("div", { class: "inline-form" });
  const count = pipeline.stages.length;

  async function move(delta) {
    const ids = pipeline.stages.map((s) => s.id);
    const [moved] = ids.splice(index, 1);
    ids.splice(index + delta, 0, moved);
    try {
      const updated = await adminApi.orderStages(pipeline.id, ids);
      const place = index + delta;
      const stuck = (delta < 0 && place === 0) || (delta > 0 && place === count - 1); // that button is off now
      redraw(updated, `stage-${(delta < 0) !== stuck ? "up" : "down"}-${stage.id}`);
      announce(`${stage.name} moved ${delta < 0 ? "up" : "down"}: now ${index + delta + 1} of ${count}.`);
    } catch (error) {
      if (error.status !== 401) toast(sentence(error), { intent: "error" });
    }
  }

  const edit = button(
    ["Edit", hidden(` ${stage.name}`)],
    () => {
      edit.hidden = true;
      editBox.replaceChildren(
        formShell({
          label: `Edit the stage ${stage.name}`,
          key: `stage-edit-${stage.id}`,
          submitLabel: "Save",
          onCancel: () => {
            editBox.replaceChildren();
            edit.hidden = false;
            edit.focus();
          },
          fields: stageFields(stage),
          onSubmit: async (form) => {
            const { body, errors } = stageBody(formValues(form));
            formMessage(form, null);
            if (showErrors(form, errors)) return;
            try {
              await adminApi.updateStage(pipeline.id, stage.id, body);
              const fresh = (await adminApi.pipelines()).items.find((p) => p.id === pipeline.id);
              toast(`“${body.name}” is saved.`);
              redraw(fresh, `stage-edit-${stage.id}`);
            } catch (error) {
              formError(form, error);
            }
          },
        }),
      );
      editBox.querySelector("input")?.focus();
    },
    { size: "small", key: `stage-edit-${stage.id}` },
  );

  const up = button(["Up", hidden(`: move ${stage.name} up`)], () => move(-1), { size: "small", key: `stage-up-${stage.id}` });
  const down = button(["Down", hidden(`: move ${stage.name} down`)], () => move(1), {
    size: "small",
    key: `stage-down-${stage.id}`,
  });
  // The first stage cannot go up nor the last down: their buttons keep their place, unseen.
  up.classList.toggle("unused", index === 0);
  down.classList.toggle("unused", index === count - 1);

  li.append(
    h(
      "div",
      { class: "stage-main" },
      h("span", { class: "stage-position", "aria-hidden": "true" }, String(index + 1)),
      h("span", { class: "stage-name" }, stage.name),
      stage.outcome !== "open" ? badge(stage.outcome) : null,
      h(
        "span",
        { class: "sub" },
        `${stage.probability}% chance`,
        stage.rot_days ? ` · rotting after ${stage.rot_days} days` : "",
      ),
    ),
    h(
      "div",
      { class: "stage-actions" },
      up,
      down,
      edit,
      button(
        ["Delete", hidden(` ${stage.name}`)],
        async () => {
          const ok = await confirmDialog({
            title: `Delete the stage “${stage.name}”?`,
            text: "Only a stage no deal is or was in can be deleted; a used one can be renamed instead.",
            confirmLabel: "Delete",
          });
          if (!ok) return;
          try {
            await adminApi.removeStage(pipeline.id, stage.id);
            const fresh = (await adminApi.pipelines()).items.find((p) => p.id === pipeline.id);
            toast(`The stage “${stage.name}” is deleted.`);
            redraw(fresh, `stage-new-open-${pipeline.id}`);
          } catch (error) {
            if (error.status !== 401) toast(sentence(error), { intent: "error" });
          }
        },
        { size: "small", key: `stage-delete-${stage.id}` },
      ),
    ),
    editBox,
  );
  return li;
}

function pipelinePanel(pipeline, { onChanged, onRemoved }) {
  let panel = null;
  const redraw = (updated, focusKey) => {
    const fresh = pipelinePanel(updated, { onChanged, onRemoved });
    panel.replaceWith(fresh);
    const target = focusKey ? fresh.querySelector(`[data-key="${focusKey}"]`) : null;
    (target || fresh.querySelector("h2")).focus();
    onChanged?.(updated);
  };
  const stages = h(
    "ol",
    { class: "stages", "aria-label": `Stages of ${pipeline.name}` },
    pipeline.stages.map((stage, i) => stageItem(pipeline, stage, i, { redraw })),
  );

  const stageBox = h("div", { class: "inline-form" });
  const stageOpener = button(
    "Add a stage",
    () => {
      stageOpener.hidden = true;
      stageBox.replaceChildren(
        formShell({
          label: `Add a stage to ${pipeline.name}`,
          key: `stage-new-${pipeline.id}`,
          submitLabel: "Add stage",
          onCancel: () => {
            stageBox.replaceChildren();
            stageOpener.hidden = false;
            stageOpener.focus();
          },
          fields: [
            ...stageFields(),
            field({
              name: "position",
              label: "Where",
              kind: "select",
              value: "",
              options: [
                { value: "", label: "Last" },
                ...pipeline.stages.map((stage, i) => ({ value: String(i), label: `Before ${stage.name}` })),
              ],
            }),
          ],
          onSubmit: async (form) => {
            const values = formValues(form);
            const { body, errors } = stageBody(values);
            if (values.position !== "") body.position = Number(values.position);
            if (body.rot_days === null) delete body.rot_days;
            formMessage(form, null);
            if (showErrors(form, errors)) return;
            try {
              const stage = await adminApi.addStage(pipeline.id, body);
              const fresh = (await adminApi.pipelines()).items.find((p) => p.id === pipeline.id);
              toast(`“${stage.name}” is added to ${pipeline.name}.`);
              redraw(fresh, `stage-edit-${stage.id}`);
            } catch (error) {
              formError(form, error);
            }
          },
        }),
      );
      stageBox.querySelector("input")?.focus();
    },
    { key: `stage-new-open-${pipeline.id}` },
  );

  const renameBox = h("div", { class: "inline-form" });
  const rename = button(
    "Rename",
    () => {
      rename.hidden = true;
      renameBox.replaceChildren(
        formShell({
          label: `Rename ${pipeline.name}`,
          key: `pipeline-rename-${pipeline.id}`,
          submitLabel: "Save",
          onCancel: () => {
            renameBox.replaceChildren();
            rename.hidden = false;
            rename.focus();
          },
          fields: [field({ name: "name", label: "Pipeline name", required: true, maxlength: 200, value: pipeline.name })],
          onSubmit: async (form) => {
            const name = formValues(form).name.trim();
            formMessage(form, null);
            if (showErrors(form, { name: name ? null : "Give the pipeline a name." })) return;
            try {
              const updated = await adminApi.updatePipeline(pipeline.id, { name });
              toast(`The pipeline is now “${updated.name}”.`);
              redraw(updated, `pipeline-rename-${pipeline.id}`);
            } catch (error) {
              formError(form, error);
            }
          },
        }),
      );
      renameBox.querySelector("input")?.focus();
    },
    { size: "small", key: `pipeline-rename-${pipeline.id}` },
  );

  const actions = h(
    "div",
    { class: "pipeline-actions" },
    h("a", { href: href("/deals", { pipeline: pipeline.id }) }, "Open the board"),
    rename,
    pipeline.is_default
      ? null
      : button(
          "Make default",
          async () => {
            try {
              const updated = await adminApi.updatePipeline(pipeline.id, { is_default: true });
              toast(`New deals go to “${updated.name}” unless another pipeline is chosen.`);
              onChanged?.(updated, { reloadAll: true });
            } catch (error) {
              if (error.status !== 401) toast(sentence(error), { intent: "error" });
            }
          },
          { size: "small", key: `pipeline-default-${pipeline.id}` },
        ),
    button(
      "Delete",
      async () => {
        const ok = await confirmDialog({
          title: `Delete the pipeline “${pipeline.name}”?`,
          text: "Only a pipeline no deal is or was in can be deleted.",
          confirmLabel: "Delete",
        });
        if (!ok) return;
        try {
          await adminApi.removePipeline(pipeline.id);
          toast(`The pipeline “${pipeline.name}” is deleted.`);
          onRemoved?.(panel);
        } catch (error) {
          if (error.status !== 401) toast(sentence(error), { intent: "error" });
        }
      },
      { size: "small", key: `pipeline-delete-${pipeline.id}` },
    ),
  );

  panel = h(
    "section",
    { class: "panel pipeline", "aria-labelledby": `pipeline-${pipeline.id}-title`, dataset: { pipeline: pipeline.id } },
    h(
      "div",
      { class: "pipeline-head" },
      h("h2", { id: `pipeline-${pipeline.id}-title`, class: "panel-title", tabindex: "-1" }, pipeline.name),
      pipeline.is_default ? badge("default", "brand") : null,
    ),
    actions,
    renameBox,
    stages,
    stageOpener,
    stageBox,
  );
  return panel;
}

function newPipelineForm({ onCreated, onCancel }) {
  return formShell({
    label: "Add a pipeline",
    key: "pipeline-new",
    submitLabel: "Add pipeline",
    onCancel,
    fields: [
      field({ name: "name", label: "Pipeline name", required: true, maxlength: 200, placeholder: "Renewals" }),
      field({
        name: "stages",
        label: "Its stages",
        kind: "textarea",
        rows: 4,
        hint: "One per line, in order (you can add, change and move them afterwards). Empty: add them afterwards.",
      }),
      checkboxField({ name: "is_default", label: "New deals go here (the default pipeline)" }),
    ],
    onSubmit: async (form) => {
      const values = formValues(form);
      const name = values.name.trim();
      const stages = values.stages
        .split("\n")
        .map((line) => line.trim())
        .filter(Boolean);
      const errors = {};
      if (!name) errors.name = "Give the pipeline a name.";
      if (stages.length > 50) errors.stages = "At most 50 stages.";
      if (stages.some((s) => s.length > 200)) errors.stages = "A stage name has at most 200 characters.";
      if (new Set(stages).size !== stages.length) errors.stages = "A stage is listed twice.";
      formMessage(form, null);
      if (showErrors(form, errors)) return;
      try {
        const created = await adminApi.addPipeline({
          name,
          is_default: form.querySelector('[data-check="is_default"]').checked,
          stages: stages.map((stage) => ({ name: stage })),
        });
        onCreated(created);
      } catch (error) {
        formError(form, error, { aliases: { "stages.0.name": "stages" } });
      }
    },
  });
}

export async function pipelinesPage(main, { alive }) {
  const { items } = await adminApi.pipelines();
  if (!alive()) return null;
  const stack = h("div", { class: "stack pipelines" });
  const reloadAll = async () => {
    const fresh = await adminApi.pipelines();
    stack.replaceChildren(...fresh.items.map(panelFor));
  };
  const panelFor = (pipeline) =>
    pipelinePanel(pipeline, {
      onChanged: (_updated, options) => {
        if (options?.reloadAll) reloadAll();
      },
      onRemoved: (panel) => {
        panel.remove();
        main.querySelector("h1")?.focus();
      },
    });
  stack.append(...items.map(panelFor));

  const formBox = h("div", { class: "inline-form" });
  const opener = button("Add a pipeline", () => open(), { appearance: "primary", key: "pipeline-open" });
  function open() {
    opener.hidden = true;
    formBox.replaceChildren(
      section(
        "pipeline-new",
        "A new pipeline",
        newPipelineForm({
          onCreated: async (created) => {
            close();
            toast(`The pipeline “${created.name}” is added.`);
            if (created.is_default) await reloadAll();
            else stack.append(panelFor(created));
          },
          onCancel: () => close(),
        }),
      ),
    );
    formBox.querySelector("input")?.focus();
  }
  function close() {
    formBox.replaceChildren();
    opener.hidden = false;
    opener.focus();
  }
  main.replaceChildren(
    ...adminHeader("Pipelines", { sub: "The deal pipelines and their stages, in order.", actions: opener }),
    formBox,
    stack,
  );
  return null;
}
