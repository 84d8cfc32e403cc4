/* Provider config form: picking a type fills in its default base URL (unless one was typed). */
(function () {
  "use strict";
  function setup() {
    const select = document.querySelector("select.gm-provider-type");
    const input = document.querySelector("input.gm-base-url");
    if (!select || !input) return;
    const defaults = JSON.parse(select.dataset.defaultBaseUrls || "{}");
    let previous = select.value;
    const apply = () => {
      const wanted = defaults[select.value] || "";
      if (!input.value || input.value === (defaults[previous] || "")) input.value = wanted;
      input.placeholder = wanted || "this provider has no default: set its base URL";
      previous = select.value;
    };
    select.addEventListener("change", apply);
    if (!input.value) apply();
    else input.placeholder = defaults[select.value] || "";
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
