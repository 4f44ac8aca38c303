// prettier settings (OCA 17.0 template). The plugin is resolved from here so
// that the copy pre-commit installs next to prettier is found.
/** @type {import('prettier').Config} */
const config = {
    plugins: [require.resolve("@prettier/plugin-xml")],
    bracketSpacing: false,
    printWidth: 88,
    proseWrap: "always",
    semi: true,
    trailingComma: "es5",
    xmlWhitespaceSensitivity: "strict",
    // Indentation as in the OCA .editorconfig: 4 spaces, 2 for YAML and JSON.
    tabWidth: 4,
    overrides: [{files: "*.{json,yml,yaml}", options: {tabWidth: 2}}],
};

module.exports = config;
